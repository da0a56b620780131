// The demo's conversation template, prompt embedding and answer post-processing (the original's
// chatbridge/conversation/conversation.py), and ChatSession on the tiny model.
#include <catch2/catch.hpp>

#include "datasets/media/valor_video.h"
#include "framework/error.h"
#include "models/conversation.h"
#include "models/generation.h"
#include "runners/serve/chat_media.h"
#include "runners/serve/chat_session.h"
#include "tests/runners/serve/chat_fixture.h"
#include "tests/support/make_media.h"

using namespace cb;

TEST_CASE("first-turn prompts of every upload type are the demo's strings") {
  const std::vector<std::pair<UploadKind, std::string>> cases{
      {UploadKind::image, "###Human: Given following image: <ImageHere>.###Human: What is it?###Assistant:"},
      {UploadKind::audio, "###Human: Given the following audio: <ImageHere>.###Human: What is it?###Assistant:"},
      {UploadKind::video,
       "###Human: Given following video: <ImageHere> and its background audio: <ImageHere>.###Human: What is "
       "it?###Assistant:"},
      {UploadKind::onlyvideo, "###Human: Given following video: <ImageHere>.###Human: What is it?###Assistant:"},
      {UploadKind::imageaudio,
       "###Human: Given following image: <ImageHere> and audio: <ImageHere>.###Human: What is it?###Assistant:"},
  };
  for (const auto& [kind, expected] : cases) {
    Conversation c;
    c.upload(kind);
    c.ask("What is it?");
    c.append_message(c.roles.second, std::nullopt);
    CHECK(c.get_prompt() == expected);
    const auto slots = std::count(expected.begin(), expected.end(), '<');
    CHECK(upload_slots(kind) == slots);
  }
}

TEST_CASE("later turns: stored answers after ': ', empty messages as pending turns, system first") {
  Conversation c;
  c.system = "Sys";
  c.upload(UploadKind::image);
  c.ask("Q1");
  c.append_message("Assistant", "A1");
  c.ask("Q2");
  c.append_message("Assistant", "");
  CHECK(c.get_prompt() ==
        "Sys###Human: Given following image: <ImageHere>.###Human: Q1###Assistant: A1###Human: Q2###Assistant:");
}

TEST_CASE("ask joins the previous Human message only when it ends with </Img>") {
  Conversation c;
  c.append_message("Human", "<Img><ImageHere></Img>");
  c.ask("Describe.");
  REQUIRE(c.messages.size() == 1);
  CHECK(*c.messages[0].second == "<Img><ImageHere></Img> Describe.");
  c.append_message("Assistant", "x");
  c.ask("More.");
  CHECK(c.messages.size() == 3);
}

TEST_CASE("post-processing drops a leading 0 then 1, cuts at ### and after the last Assistant:") {
  const auto tok = LlamaTokenizer::load(test::golden_tokenizer());
  auto ids = [&](std::vector<int64_t> head, const std::string& text) {
    auto t = tok.encode(text, false);
    head.insert(head.end(), t.begin(), t.end());
    return head;
  };
  CHECK(postprocess_answer(tok, ids({0, 1}, " the cat sat###Human: more")) == "the cat sat");
  CHECK(postprocess_answer(tok, ids({1}, "hello Assistant: the dog ###")) == "the dog");
  CHECK(postprocess_answer(tok, ids({}, "plain text")) == "plain text");
  // Only ONE leading 0 and one leading 1 are dropped, in that order.
  const auto a = postprocess_answer(tok, ids({1, 0}, "x"));
  CHECK(a == strip_whitespace(tok.decode(ids({0}, "x"))));
}

TEST_CASE("stop sequences come from the loaded tokenizer and match '###' however it is glued") {
  const auto tok = LlamaTokenizer::load(test::golden_tokenizer());
  const auto stops = stop_sequences_for(tok);
  REQUIRE(!stops.empty());
  for (const auto& s : stops) CHECK(tok.decode(s).find("###") != std::string::npos);
  for (const std::string text : {"###", "the end ###", "word###"}) {
    const auto enc = tok.encode(text, false);
    const bool matched = std::any_of(stops.begin(), stops.end(), [&](const auto& s) {
      return enc.size() >= s.size() &&
             std::equal(s.begin(), s.end(), enc.end() - static_cast<std::ptrdiff_t>(s.size()));
    });
    CHECK(matched);
  }
}

TEST_CASE("visible_answer holds back a possible stop start, whitespace and unfinished UTF-8") {
  const std::vector<std::string> stops{"###", "END"};
  CHECK(visible_answer(" Hello ##", stops) == "Hello");
  CHECK(visible_answer("Hello ### more", stops) == "Hello");
  CHECK(visible_answer("Hello E", stops) == "Hello");
  CHECK(visible_answer("x Assistant: y", stops) == "y");
  CHECK(visible_answer("caf\xC3", stops) == "caf");
  CHECK(visible_answer("caf\xC3\xA9", stops) == "caf\xC3\xA9");
}

TEST_CASE("get_context_emb interleaves token embeddings and features, bos first, cuts from the left, text alone") {
  test::TempDir dir;
  auto model = test::tiny_chat_model(dir.path);
  const auto& tok = model->tokenizer();
  const int64_t nq = model->config().num_query_token, d = model->config().llama.hidden_size;
  Conversation c;
  c.upload(UploadKind::video);
  c.ask("What happens?");
  c.append_message("Assistant", std::nullopt);
  const auto prompt = c.get_prompt();
  std::vector<Features> feats{{torch::randn({1, nq, d}), torch::ones({1, nq}, torch::kLong)},
                              {torch::randn({1, nq, d}), torch::ones({1, nq}, torch::kLong)}};
  const auto seg0 = tok.encode("###Human: Given following video: ", true);
  const auto seg1 = tok.encode(" and its background audio: ", false);
  const auto seg2 = tok.encode(".###Human: What happens?###Assistant:", false);
  const int64_t L = int64_t(seg0.size() + seg1.size() + seg2.size()) + 2 * nq;
  auto embs = get_context_emb(*model, prompt, feats, 10, 2000);
  REQUIRE(embs.sizes() == torch::IntArrayRef({1, L, d}));
  CHECK(seg0.front() == tok.bos_id());
  auto expect0 = model->embed_tokens(torch::tensor(seg0).unsqueeze(0));
  CHECK(torch::equal(embs.slice(1, 0, int64_t(seg0.size())), expect0));
  CHECK(torch::equal(embs.slice(1, int64_t(seg0.size()), int64_t(seg0.size()) + nq), feats[0].embeds));
  const int64_t f1 = int64_t(seg0.size() + seg1.size()) + nq;
  CHECK(torch::equal(embs.slice(1, f1, f1 + nq), feats[1].embeds));

  // Left cut: keep max_length - max_new_tokens positions, the tail.
  const int64_t max_new = 7, max_length = L - 5 + max_new;
  auto cut = get_context_emb(*model, prompt, feats, max_new, max_length);
  REQUIRE(cut.size(1) == L - 5);
  CHECK(torch::equal(cut, embs.slice(1, 5)));

  feats.pop_back();
  CHECK_THROWS_AS(get_context_emb(*model, prompt, feats, 10, 2000), Error);

  // A question before any upload: no features, the prompt's tokens alone (this threw until 2026-12-07).
  Conversation t;
  t.ask("What happens?");
  t.append_message("Assistant", std::nullopt);
  REQUIRE(t.get_prompt() == "###Human: What happens?###Assistant:");
  const auto ids = tok.encode(t.get_prompt(), true);
  CHECK(torch::equal(get_context_emb(*model, t.get_prompt(), {}, 10, 2000),
                     model->embed_tokens(torch::tensor(ids).unsqueeze(0))));
}

TEST_CASE("training, evaluation and chat feed the LLaMA the same prompt: same pieces, tokens and feature rows") {
  test::TempDir dir;
  auto model = test::tiny_chat_model(dir.path);
  const int64_t s = model->config().image_size;
  torch::NoGradGuard no_grad;
  model->eval();
  const auto image = torch::randn({1, 3, s, s});
  const std::vector<Features> feats{model->encode_img(image)};
  // Training: a stage-2 conversation as TaskConversation builds it (template, instruction, answer).
  const std::string instruction = "Describe the image briefly.";
  const std::string prompt = "###Human: Given following image: <query>.###Human: " + instruction + "###Assistant:";
  const auto train = model->instruct_inputs(feats, {prompt + "a tabby cat\n###"}, model->config().max_txt_len);
  // Evaluation: the same prompt without the answer (chatbridge-eval's run.prompt).
  const auto eval = model->instruct_inputs(feats, {prompt});
  // Chat: the demo's conversation after an image upload and the same question.
  Conversation c;
  c.upload(UploadKind::image);
  c.ask(instruction);
  c.append_message(c.roles.second, std::nullopt);
  const auto chat = get_context_emb(*model, c.get_prompt(), feats, 10, 2000);

  const int64_t L = eval.inputs_embeds.size(1);
  REQUIRE(chat.sizes() == eval.inputs_embeds.sizes());
  CHECK(torch::equal(chat, eval.inputs_embeds));
  REQUIRE(train.inputs_embeds.size(1) > L);
  CHECK(torch::equal(train.inputs_embeds.slice(1, 0, L), eval.inputs_embeds));
  CHECK(torch::equal(train.attention_mask.slice(1, 0, L), eval.attention_mask));
  // The first answer token follows the prompt exactly where generation starts, and is a target.
  const auto answer = model->tokenizer().encode("a tabby cat\n###", false);
  CHECK(train.targets[0][L].item<int64_t>() == answer.front());
  CHECK((train.targets.slice(1, 0, L) == -100).all().item<bool>());
}

TEST_CASE("ChatSession: upload, ask, streamed answer equals the stored answer, beams outside 1..10 refused") {
  test::TempDir dir;
  auto model = test::tiny_chat_model(dir.path);
  const int64_t s = model->config().image_size;
  ChatSession chat(model);
  chat.upload_image(torch::randn({3, s, s}));
  chat.ask("What is in the image?");
  ChatSettings settings;
  settings.do_sample = false;
  settings.max_new_tokens = 12;
  std::string streamed;
  const auto answer = chat.answer(settings, [&](const std::string& d) {
    streamed += d;
    return false;
  });
  CHECK(streamed == answer);
  REQUIRE(chat.conversation().messages.size() == 3);
  CHECK(chat.conversation().messages.back().first == "Assistant");
  CHECK(chat.conversation().messages.back().second.value_or("<none>") == answer);
  CHECK(chat.last_stats().generated_tokens >= 1);
  CHECK(chat.last_stats().generated_tokens <= settings.max_new_tokens);

  // Same settings, same context: greedy decoding repeats itself.
  chat.conversation().messages.pop_back();
  CHECK(chat.answer(settings) == answer);

  const auto before = chat.conversation().messages.size();
  for (const int64_t beams : {0, 11}) {
    settings.num_beams = beams;
    CHECK_THROWS_WITH(chat.answer(settings), "num_beams must be in 1..10, got " + std::to_string(beams));
    CHECK(chat.conversation().messages.size() == before);  // no dangling Assistant turn
  }

  chat.reset();
  CHECK(chat.conversation().messages.empty());
  CHECK(chat.features().empty());
}

namespace {

// What ChatSession::answer must amount to, spelt out with the model's pieces: the demo's prompt for one
// image and one question, its embeddings, generate_from_embeds with these options, the demo's cut.
std::string direct_generate(ChatBridgeImpl& model, const Features& image, const std::string& question,
                            const GenerateOptions& o) {
  torch::NoGradGuard no_grad;
  Conversation c;
  c.upload(UploadKind::image);
  c.ask(question);
  c.append_message(c.roles.second, std::nullopt);
  const auto embs = get_context_emb(model, c.get_prompt(), {image}, o.max_new_tokens, 2000);
  auto seq = generate_from_embeds(model.llama_model, embs, torch::Tensor(), o).sequences[0].contiguous();
  return postprocess_answer(model.tokenizer(),
                            std::vector<int64_t>(seq.data_ptr<int64_t>(), seq.data_ptr<int64_t>() + seq.numel()));
}

}  // namespace

TEST_CASE("ChatSession with 3 beams answers what generate() with the same settings answers, in one streamed piece") {
  test::TempDir dir;
  auto model = test::tiny_chat_model(dir.path);
  const int64_t s = model->config().image_size;
  torch::manual_seed(11);
  const auto pixels = torch::randn({3, s, s});
  const std::string question = "What is in the image?";
  Features image;
  {
    torch::NoGradGuard no_grad;
    image = model->encode_img(pixels.unsqueeze(0));
  }

  GenerateOptions o;  // the demo's call with 3 beams, no sampling
  o.max_new_tokens = 10;
  o.num_beams = 3;
  o.top_p = 0.9;
  o.stop_sequences = stop_sequences_for(model->tokenizer());
  const auto expected = direct_generate(*model, image, question, o);
  GenerateOptions greedy = o;
  greedy.num_beams = 1;
  // The case is one where beams matter: ignoring num_beams would give another answer.
  REQUIRE(direct_generate(*model, image, question, greedy) != expected);

  ChatSession chat(model);
  chat.upload_image(pixels);
  chat.ask(question);
  ChatSettings settings;
  settings.do_sample = false;
  settings.num_beams = 3;
  settings.max_new_tokens = o.max_new_tokens;
  std::vector<std::string> pieces;
  const auto answer = chat.answer(settings, [&](const std::string& d) {
    pieces.push_back(d);
    return false;
  });
  CHECK(answer == expected);
  CHECK(pieces == std::vector<std::string>{expected});  // the search ends, then the whole answer
  CHECK(chat.last_stats().generated_tokens >= 1);
  CHECK(chat.last_stats().generated_tokens <= o.max_new_tokens);

  // Beam sampling (the demo: do_sample with beams) from the same seed draws the same answer.
  settings.do_sample = true;
  settings.seed = 5;
  o.do_sample = true;
  chat.conversation().messages.pop_back();
  const auto sampled = chat.answer(settings);
  torch::manual_seed(5);
  CHECK(sampled == direct_generate(*model, image, question, o));
}

TEST_CASE("chat media: a folder of frames is a video, sampled as the datasets' VideoMapper samples it") {
  test::TempDir dir;
  const auto clip = dir.path / "clip";
  std::filesystem::create_directories(clip);
  for (int t = 0; t < 8; ++t)
    test::write_file(clip / fmt::format("img_{:04d}.jpg", t + 1), test::encode_jpeg(test::pattern_frame(t, 40, 48)));
  ChatMediaOptions media;
  media.image_size = 32;
  const auto v = video_from_frame_dir(clip, media);
  CHECK(v.frames.sizes() == torch::IntArrayRef{4, 3, 32, 32});
  CHECK_FALSE(v.fbank.has_value());
  VideoMapperOptions vo;
  vo.resolution = 32;
  vo.sample_num = 4;
  ImageDecoder decoder;
  std::mt19937_64 rng{0};
  CHECK(torch::equal(v.frames, VideoMapper(dir.path, vo).video("clip", decoder, rng)));
  for (int64_t k = 1; k < 4; ++k) CHECK_FALSE(torch::equal(v.frames[k], v.frames[k - 1]));  // one frame per group
  CHECK_THROWS_WITH(read_media_file(clip), Catch::Contains("a directory, not a file"));
}
