// Shard lists of webdataset tar sets as webdataset (and LAVIS's build_info.storage) write them: a brace
// pattern such as "/data/laion/{00000..01255}.tar", expanded like the braceexpand package that
// webdataset's shard lists use. Shared by the cc_sbu / laion builders and the valor webdataset loader.
#pragma once
#include <string>
#include <vector>

namespace cb {

// "{a..b}" numeric ranges (zero-padded to the wider bound when either bound has a leading zero) and
// "{x,y}" alternatives, expanded left to right; cb::Error naming the pattern when one is malformed.
std::vector<std::string> expand_braces(const std::string& pattern);

}  // namespace cb
