// chatbridge-probe: does the bridge see its inputs? For a model (a training yaml, usually with
// model.ckpt in --options):
//   * feature spread: for each --image / --audio, the features the frozen encoder hands on
//     (ln_vision / ln_audio) and what the LLaMA gets (after llama_proj); the mean relative distance
//     between different inputs, and for images the distance between the training (valor) and the
//     inference (blip_image_eval) preprocessing of the same file. A bridge can only tell inputs apart
//     that its encoder tells apart, and it only answers at inference what it learned in training
//     when the two preprocessings give near features.
//   * pairing: the mean loss of --batches training batches with their true pairs and with the texts
//     rolled by one inside each batch (media and text mismatched). A model that uses its media has a
//     much lower true-pair loss; one that ignores them has the same loss both ways.
//   * teacher forcing vs decoding: how many target tokens the model predicts given the true prefix,
//     and whether greedy decoding from the same inputs (as evaluation and chat run) writes the
//     targets and stops where they end;
//   * gradient reach: the gradient norm of every trainable part after those batches' backward.
//   chatbridge-probe --cfg-path train_configs/tiny_pretrain.yaml --image a.jpg --image b.jpg
//                    [--audio x.wav ...] [--batches N] --options model.ckpt=... model.llama_model=...
#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include <algorithm>
#include <cmath>
#include <iostream>
#include <map>

#include "datasets/audio/audio_mapper.h"
#include "datasets/media/image_decode.h"
#include "datasets/media/valor_video.h"
#include "datasets/processors/image_processors.h"
#include "framework/app_options.h"
#include "framework/config.h"
#include "framework/error.h"
#include "models/chatbridge.h"
#include "models/generation.h"
#include "runners/serve/chat_media.h"
#include "runners/train/task.h"

namespace {

// ||a - b|| / mean(||a||, ||b||) over the flattened tensors.
double relative_distance(const torch::Tensor& a, const torch::Tensor& b) {
  const double scale = 0.5 * (a.norm().item<double>() + b.norm().item<double>());
  return scale > 0 ? (a - b).norm().item<double>() / scale : 0.0;
}

// Mean relative distance over all pairs of different inputs.
double mean_pairwise(const std::vector<torch::Tensor>& xs) {
  double sum = 0;
  int64_t n = 0;
  for (size_t i = 0; i < xs.size(); ++i)
    for (size_t j = i + 1; j < xs.size(); ++j, ++n) sum += relative_distance(xs[i], xs[j]);
  return n ? sum / static_cast<double>(n) : 0.0;
}

void image_spread(cb::ChatBridgeImpl& model, const std::vector<std::string>& files) {
  torch::NoGradGuard no_grad;
  cb::ImageDecoder decoder;
  cb::BlipImageEvalProcessor eval_proc;
  eval_proc.image_size = model.config().image_size;
  cb::VideoMapperOptions train_proc;
  train_proc.resolution = model.config().image_size;
  std::vector<torch::Tensor> enc, proj;
  double enc_pre = 0, proj_pre = 0;
  for (const auto& f : files) {
    const auto rgb = decoder.decode_file(f);
    const auto eval_px = eval_proc(rgb).unsqueeze(0);               // [1,3,S,S] chat / eval
    const auto train_px = cb::frames_to_pixels({rgb}, train_proc);  // [1,3,S,S] valor training
    auto encoded = [&](const torch::Tensor& px) { return model.ln_vision(model.visual_encoder(px)); };  // [1,1+P,Dv]
    const auto e_eval = encoded(eval_px), e_train = encoded(train_px);
    const auto p_eval = model.encode_img(eval_px).embeds, p_train = model.encode_img(train_px).embeds;  // [1,Nq,D]
    enc.push_back(e_eval);
    proj.push_back(p_eval);
    enc_pre += relative_distance(e_eval, e_train) / static_cast<double>(files.size());
    proj_pre += relative_distance(p_eval, p_train) / static_cast<double>(files.size());
  }
  std::cout << fmt::format("images ({}): between different images: ln_vision {:.4f}, llama_proj {:.4f}\n", files.size(),
                           mean_pairwise(enc), mean_pairwise(proj))
            << fmt::format(
                   "images: same image, training vs inference preprocessing: ln_vision {:.4f}, llama_proj {:.4f}\n",
                   enc_pre, proj_pre);
}

void audio_spread(cb::ChatBridgeImpl& model, const std::vector<std::string>& files, const cb::ChatMediaOptions& media) {
  torch::NoGradGuard no_grad;
  cb::AudioMapperOptions train_opts = media.audio;
  train_opts.training = true;
  std::mt19937_64 rng{0};
  std::vector<torch::Tensor> enc, proj;
  double fbank_pre = 0, proj_pre = 0;
  for (const auto& f : files) {
    const auto fbank = cb::audio_from_bytes(cb::read_media_file(f), f, media).unsqueeze(0);  // [1,n,T,F] chat / eval
    const std::filesystem::path path(f);                                                     // valor training
    const auto train_fbank = cb::AudioMapper(path.parent_path(), train_opts)(path.stem().string(), rng).unsqueeze(0);
    enc.push_back(model.ln_audio(model.audio_encoder(fbank.select(1, 0))));  // [1,L,Da]
    proj.push_back(model.encode_audio(fbank).embeds);                        // [1,Nq,D]
    fbank_pre += relative_distance(fbank, train_fbank) / static_cast<double>(files.size());
    proj_pre +=
        relative_distance(proj.back(), model.encode_audio(train_fbank).embeds) / static_cast<double>(files.size());
  }
  std::cout << fmt::format("audio ({}): between different clips: ln_audio {:.4f}, llama_proj {:.4f}\n", files.size(),
                           mean_pairwise(enc), mean_pairwise(proj))
            << fmt::format("audio: same clip, training vs inference preprocessing: fbank {:.4f}, llama_proj {:.4f}\n",
                           fbank_pre, proj_pre);
}

// Decoded ids as a JSON string (newlines visible).
std::string text_of(const cb::ChatBridgeImpl& model, const torch::Tensor& ids) {
  const auto c = ids.contiguous();
  return nlohmann::json(model.tokenizer().decode({c.data_ptr<int64_t>(), static_cast<size_t>(c.numel())})).dump();
}

// The batch with its texts rolled by one (sample i gets sample i+1's caption or conversation).
cb::Batch rolled(cb::Batch b) {
  auto roll = [](std::vector<std::string>& v) {
    if (v.size() > 1) std::rotate(v.begin(), v.begin() + 1, v.end());
  };
  roll(b.text_input);
  roll(b.conversation);
  return b;
}

// The first name component: Qformer, llama_proj, image_query_tokens, ...
std::string part_of(const std::string& name) {
  const auto dot = name.find('.');
  return dot == std::string::npos ? name : name.substr(0, dot);
}

// Teacher forcing against greedy decoding on one training batch.
struct DecodeStats {
  int64_t tokens = 0, tokens_right = 0;    // target tokens, and those the teacher-forced argmax predicts
  int64_t ends = 0, ends_right = 0;        // each row's last target (where the text ends)
  int64_t decoded = 0, decoded_right = 0;  // rows whose greedy decoding writes the first answer
};

void check_decoding(cb::ChatBridgeImpl& model, const cb::Batch& batch, uint64_t step_seed, DecodeStats& st) {
  torch::NoGradGuard no_grad;
  model.seed(step_seed);
  const auto feed = model.forward(batch).llama;
  cb::LlamaInputs in;
  in.inputs_embeds = feed.inputs_embeds;
  in.attention_mask = feed.attention_mask;
  const auto pred = model.llama_model->forward(in).logits.slice(1, 0, -1).argmax(-1);  // [B,L-1]
  const auto target = feed.targets.slice(1, 1);                                        // [B,L-1]
  const auto supervised = target != -100;
  st.tokens += supervised.sum().item<int64_t>();
  st.tokens_right += (supervised & (pred == target)).sum().item<int64_t>();
  for (int64_t b = 0; b < target.size(0); ++b) {
    const auto at = supervised[b].nonzero();
    if (at.numel() == 0) continue;
    const auto last = at[-1][0].item<int64_t>();
    ++st.ends;
    st.ends_right += pred[b][last].item<int64_t>() == target[b][last].item<int64_t>();
    // Greedy decoding from the inputs before the first target, as inference runs it: does it write the
    // first answer and stop where it ends?
    const auto first = at[0][0].item<int64_t>() + 1;  // inputs [0, first) predict targets[first]
    int64_t end = first;                              // the first answer: up to the next unsupervised position
    while (end < feed.targets.size(1) && feed.targets[b][end].item<int64_t>() != -100) ++end;
    const auto want = feed.targets[b].slice(0, first, end);
    cb::GenerateOptions g;
    g.max_new_tokens = want.size(0) + 3;  // room to run past the end, as inference does
    const auto prompt = feed.inputs_embeds[b].slice(0, 0, first).unsqueeze(0);
    const auto got =
        cb::generate_from_embeds(model.llama_model, prompt, feed.attention_mask[b].slice(0, 0, first).unsqueeze(0), g)
            .sequences[0]
            .slice(0, 1);  // after the placeholder id
    ++st.decoded;
    const bool same = got.size(0) >= want.size(0) && torch::equal(got.slice(0, 0, want.size(0)), want);
    st.decoded_right += same;
    if (!same && st.decoded - st.decoded_right <= 3)
      std::cout << fmt::format("  greedy {} | targets {}\n", text_of(model, got), text_of(model, want));
  }
}

void pairing_and_gradients(cb::ChatBridgeImpl& model, const cb::Config& cfg, int64_t batches) {
  const auto task = cb::make_task(cfg);
  const auto source = task->build_train_source(cfg, 0, 1);
  model.train();
  model.zero_grad();
  std::map<std::string, std::pair<double, double>> loss_by_task;  // task -> (true, rolled) sums
  std::map<std::string, int64_t> count;
  DecodeStats st;
  int64_t samples = 0;
  for (int64_t i = 0; i < batches; ++i) {
    const auto batch = source->next();
    const auto seed = static_cast<uint64_t>(i);
    const auto out = task->train_step(model, batch, seed);
    out.loss.backward();
    auto& l = loss_by_task[batch.task];
    l.first += out.loss.item<double>();
    {
      torch::NoGradGuard no_grad;
      l.second += task->train_step(model, rolled(batch), seed).loss.item<double>();
    }
    ++count[batch.task];
    samples += batch.size();
    check_decoding(model, batch, seed, st);
  }
  std::cout << fmt::format("pairing: mean loss over {} batches ({} samples), true pairs vs texts rolled in the batch\n",
                           batches, samples);
  for (const auto& [t, l] : loss_by_task)
    std::cout << fmt::format("  task {:<10} {} batches: true {:.4f}, rolled {:.4f}\n", t, count[t], l.first / count[t],
                             l.second / count[t]);
  std::cout << fmt::format("teacher-forced argmax: {} of {} target tokens right; {} of {} rows' last target right\n",
                           st.tokens_right, st.tokens, st.ends_right, st.ends)
            << fmt::format("greedy decoding from the training prompt: {} of {} rows write their first answer\n",
                           st.decoded_right, st.decoded);
  std::map<std::string, double> sq;
  for (const auto& p : model.named_parameters(true))
    if (p.value().requires_grad())
      sq[part_of(p.key())] += p.value().grad().defined() ? p.value().grad().pow(2).sum().item<double>() : 0.0;
  std::cout << "gradient norm per trainable part (sum over those batches):\n";
  for (const auto& [part, s] : sq) std::cout << fmt::format("  {:<28} {:.4e}\n", part, std::sqrt(s));
}

int run(int argc, char** argv) {
  int cli_argc = argc;
  const std::vector<std::string> options = cb::take_options_remainder(argc, argv, cli_argc);
  CLI::App app{"ChatBridge probe: feature spread between inputs, true vs mismatched pairs, gradient reach"};
  std::string cfg_path;
  std::vector<std::string> images, audios;
  int64_t batches = 8;
  cb::AppOptions opts;
  app.add_option("--cfg-path", cfg_path, "training yaml of the model (its data feeds the pairing check)")->required();
  app.add_option("--image", images, "an image file (repeat the option for several)");
  app.add_option("--audio", audios, "an audio file (repeat the option for several)");
  app.add_option("--batches", batches, "training batches for the pairing and gradient checks (0: skip)")
      ->capture_default_str();
  if (const auto exit_code = cb::parse_config_app(app, opts, cli_argc, argv)) return *exit_code;
  cb::apply_app_options(opts);
  const cb::Config cfg = cb::resolve_config(cfg_path, options);
  torch::manual_seed(cfg.get<int64_t>("run.seed", 42));  // required only for training
  auto model = cb::build_chatbridge(cfg.sub("model"));
  model->eval();
  if (!images.empty()) image_spread(*model, images);
  if (!audios.empty()) audio_spread(*model, audios, cb::ChatMediaOptions::for_model(model->config()));
  if (batches > 0) pairing_and_gradients(*model, cfg, batches);
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return cb::run_main("chatbridge-probe", run, argc, argv); }
