// The VQAv2 evaluator (LAVIS/ChatBridge common/vqa_tools/vqa_eval.py, VQAEval): answer
// normalisation and the consensus accuracy, plus the exact match LAVIS's GQA task reports.
#pragma once
#include <string>
#include <vector>

namespace cb::metrics {

// VQAEval.processPunctuation: each of ; / [ ] " { } ( ) = + \ _ - > < @ ` , ? ! is deleted when the
// ORIGINAL text has it next to a space or contains a digit,digit group, else replaced by a space;
// then periods not followed by a digit are deleted (the first 32 only: the original passes
// re.UNICODE as re.sub's count).
std::string vqa_process_punctuation(const std::string& text);

// VQAEval.processDigitArticle: lowercase, split on whitespace, number words none/zero..ten -> digits,
// articles a/an/the dropped, the evaluator's contraction table applied, joined by single spaces.
std::string vqa_process_digit_article(const std::string& text);

// The prediction as the evaluator normalises it: newlines/tabs -> spaces, strip, punctuation, digits
// and articles.
std::string vqa_normalize_answer(const std::string& answer);

// Accuracy of one prediction against the human answers (VQAEval.evaluate for one question): the
// answers are punctuation-processed only when they are not all equal; for each answer, the others
// matching the normalised prediction exactly give min(1, matches/3); the mean over the answers.
// In [0, 1]; fails on an empty answer list.
double vqa_accuracy(const std::string& prediction, const std::vector<std::string>& answers);

// LAVIS GQA-style exact match: the normalised prediction equals one of the answers (taken as given).
bool vqa_exact_match(const std::string& prediction, const std::vector<std::string>& answers);

}  // namespace cb::metrics
