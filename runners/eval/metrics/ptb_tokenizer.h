// The caption tokenisation of pycocoevalcap's PTBTokenizer: Stanford CoreNLP's PTBTokenizer
// (-preserveLines -lowerCase) on each caption, then the tokens of its punctuation list dropped and
// the rest joined by single spaces.
//
// The Stanford lexer is not linked; this reproduces the PTB rules that captions and short answers
// exercise: words with internal hyphens, slashes, ampersands, digit groups (3.5, 1,000, 9:30) and
// acronym periods kept whole; clitics split off ("man's" -> man 's, "don't" -> do n't, "can't" ->
// ca n't); the assimilations cannot/gonna/gotta/wanna/lemme/gimme split (can not, gon na, ...);
// brackets escaped (-LRB-, -RSB-, ...: lowercased AFTER escaping, so "-lrb-" survives the
// case-sensitive punctuation filter, as in the original); quotes, dots, dashes, ?!-runs, , ; : as
// their own tokens. Not reproduced: the abbreviation lists (a period after "mr" or "etc" is split
// like any sentence-final period), URLs, e-mails, emoticons, phone numbers, SGML.
#pragma once
#include <string>
#include <vector>

namespace cb::metrics {

// Stanford PTB tokens of one caption (newlines count as spaces), lowercased, before the filter.
std::vector<std::string> ptb_tokens(const std::string& caption);

// pycocoevalcap PTBTokenizer.tokenize for one caption: the tokens outside its PUNCTUATIONS list
// ('' ' `` ` -LRB- -RRB- -LCB- -RCB- . ? ! , : - -- ... ;) joined by single spaces.
std::string ptb_tokenize(const std::string& caption);

}  // namespace cb::metrics
