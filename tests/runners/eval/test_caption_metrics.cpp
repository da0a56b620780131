// pycocoevalcap's PTB tokenisation, BLEU-1..4 (option "closest") and ROUGE-L, and the VQAv2
// evaluator's normalisation/accuracy, on hand-checked cases. Expected BLEU/ROUGE values were
// computed with a few lines of Python following pycocoevalcap's formulas (see the comments for the
// counts they come from).
#include <catch2/catch.hpp>

#include "framework/error.h"
#include "runners/eval/metrics/bleu.h"
#include "runners/eval/metrics/ptb_tokenizer.h"
#include "runners/eval/metrics/rouge.h"
#include "runners/eval/metrics/vqa_accuracy.h"

using namespace cb::metrics;

TEST_CASE("PTB tokenizer: clitics, brackets, digit groups, acronyms, quotes, assimilations, punctuation filter") {
  CHECK(ptb_tokenize("A man's dog, running.") == "a man 's dog running");
  CHECK(ptb_tokenize("Don't stop (now)!") == "do n't stop -lrb- now -rrb-");  // lowercased escapes survive
  CHECK(ptb_tokenize("The U.S. flag; 3.5 miles -- well-known.") == "the u.s. flag 3.5 miles well-known");
  CHECK(ptb_tokenize("He said \"hi\" ... I cannot go.") == "he said hi i can not go");
  CHECK(ptb_tokenize("1,000 people at 9:30, can't wait") == "1,000 people at 9:30 ca n't wait");
  CHECK(ptb_tokenize("the dogs' toys at o'clock; rock'n'roll") == "the dogs toys at o'clock rock'n'roll");
  CHECK(ptb_tokenize("[bracket] {brace}") == "-lsb- bracket -rsb- -lcb- brace -rcb-");
  CHECK(ptb_tokenize("We're gonna see what's up?!") == "we 're gon na see what 's up ?!");
  CHECK(ptb_tokenize("  two\nlines  ") == "two lines");
  CHECK(ptb_tokenize("...") == "");
  CHECK(ptb_tokens("Hi, there.") == std::vector<std::string>{"hi", ",", "there", "."});
}

TEST_CASE("BLEU: corpus counts with the closest reference length and the brevity penalty") {
  // Image 1: 5/5 unigrams match (a x2 clipped by "a ... a"), closest ref length 6.
  // Image 2: two dogs in snow: 4/6, ref length 6. Image 3: 6/6, refs of length 2 and 8 -> 8 is closer
  // to 6. BLEU-1 = 15/17 * exp(1 - 20/17).
  std::vector<std::vector<std::string>> refs = {{"a man is riding a horse", "a person rides a brown horse"},
                                                {"two dogs play in the snow"},
                                                {"a cat", "a small cat sleeping on a red sofa"}};
  std::vector<std::string> cands = {"a man riding a horse", "two dogs are playing in snow", "a cat sleeping on a sofa"};
  auto b = bleu(refs, cands);
  CHECK(b.corpus[0] == Approx(15.0 / 17 * std::exp(1 - 20.0 / 17)).epsilon(1e-9));  // up to the smoothing constants
  CHECK(b.corpus[0] == Approx(0.7396089108744577).epsilon(1e-12));
  CHECK(b.corpus[1] == Approx(0.5951986558371314).epsilon(1e-12));
  CHECK(b.corpus[2] == Approx(0.4326507060370584).epsilon(1e-12));
  CHECK(b.corpus[3] == Approx(0.3035082601462615).epsilon(1e-12));
  REQUIRE(b.per_image.size() == 3);
  CHECK(b.per_image[2][0] == Approx(0.7165313103349458).epsilon(1e-12));  // 6/6 * exp(1 - 8/6)
  CHECK(b.per_image[2][3] == Approx(0.43298201446569307).epsilon(1e-12));

  // No bigram overlap beyond the 1 available; no trigram at all: the smoothing constants decide.
  auto short_cand = bleu({{"a b c d"}}, {"a b"});
  CHECK(short_cand.corpus[0] == Approx(std::exp(-1.0)).epsilon(1e-9));         // 2/2 * exp(1 - 4/2)
  CHECK(short_cand.corpus[2] == Approx(0.0036787944080356343).epsilon(1e-9));  // (1 * 1 * 1e-15/1e-9)^(1/3)
  CHECK_THROWS_AS(bleu({{}}, {"a"}), cb::Error);
}

TEST_CASE("ROUGE-L: max precision and max recall taken separately over the references") {
  std::vector<std::vector<std::string>> refs = {{"a man is riding a horse", "a person rides a brown horse"},
                                                {"two dogs play in the snow"},
                                                {"a cat", "a small cat sleeping on a red sofa"}};
  std::vector<std::string> cands = {"a man riding a horse", "two dogs are playing in snow", "a cat sleeping on a sofa"};
  auto r = rouge_l(refs, cands);
  // Image 1: LCS 5 with ref 1: P = 1, R = 5/6 -> F = 2.44 * 5/6 / (5/6 + 1.44).
  CHECK(r.per_image[0] == Approx(2.44 * (5.0 / 6) / (5.0 / 6 + 1.44)).epsilon(1e-12));
  // Image 2: LCS 4 (two dogs in snow): P = R = 4/6 -> F = 2/3.
  CHECK(r.per_image[1] == Approx(2.0 / 3).epsilon(1e-12));
  // Image 3: precision 6/6 from the long reference, recall 2/2 from "a cat": F = 1.
  CHECK(r.per_image[2] == Approx(1.0).epsilon(1e-12));
  CHECK(r.score == Approx(0.8536982730531117).epsilon(1e-12));
  CHECK(rouge_l({{""}}, {""}).score == 1.0);  // "".split(" ") is one empty word on both sides
  CHECK(rouge_l({{"x y"}}, {"z"}).score == 0.0);
}

TEST_CASE("VQA: answer normalisation of the VQAv2 evaluator") {
  CHECK(vqa_process_punctuation("yes, it is.") == "yes it is");    // ", " -> deleted; final period deleted
  CHECK(vqa_process_punctuation("hello-world") == "hello world");  // not next to a space -> space
  CHECK(vqa_process_punctuation("1,000 - 3.5") == "1000  3.5");    // digit comma: all deleted; 3.5 kept
  CHECK(vqa_normalize_answer("  The Two dogs.\n") == "2 dogs");
  CHECK(vqa_normalize_answer("dont know") == "don't know");
  CHECK(vqa_normalize_answer("An apple") == "apple");
  std::string dots(40, '.');
  CHECK(vqa_process_punctuation(dots) == std::string(8, '.'));  // re.sub count = re.UNICODE = 32
}

TEST_CASE("VQA: accuracy min(#matches/3, 1) averaged over leave-one-out answer subsets, exact match") {
  CHECK(vqa_accuracy("two", std::vector<std::string>(10, "2")) == Approx(1.0));
  std::vector<std::string> mixed = {"2", "2", "3", "3", "3", "3", "3", "3", "3", "3"};
  CHECK(vqa_accuracy("2", mixed) == Approx((2 * (1.0 / 3) + 8 * (2.0 / 3)) / 10));  // 0.6
  CHECK(vqa_accuracy("3", mixed) == Approx(1.0));
  CHECK(vqa_accuracy("4", mixed) == 0.0);
  // Answers that differ get punctuation processing: hot-dog -> hot dog; 2 other matches each.
  CHECK(vqa_accuracy("Hot dog", {"hot-dog", "hot dog", "hot dog"}) == Approx(2.0 / 3));
  CHECK(vqa_accuracy("yes", {"yes"}) == 0.0);  // one answer: no other answer can match (use exact match)
  CHECK(vqa_exact_match("The dog.", {"dog"}));
  CHECK_FALSE(vqa_exact_match("a cat", {"dog", "puppy"}));
  CHECK_THROWS_AS(vqa_accuracy("x", {}), cb::Error);
}
