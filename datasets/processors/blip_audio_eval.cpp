// `blip_audio_eval` of the original (BlipAudioEvalProcessor, the demo's and the LAVIS-style audio
// builders' audio processor): an audio file -> conversation.load_wav (resample to 16 kHz, 64-bin kaldi
// fbank of x·2^15) -> (x − 15.41663)/(2·6.55582) -> zero-pad -> the middle 1024-frame slice of each of
// sample_num groups -> [sample_num, 1024, 64]. Exactly the valor AudioMapper's eval path; the original
// always takes the middle slice (its random choice is commented out) and fixes melbins/target length.
#include "datasets/audio/audio_mapper.h"
#include "datasets/processors/processor.h"

namespace cb {

CB_REGISTER(processor, "blip_audio_eval", [](const Config& cfg) {
  AudioMapperOptions opts;
  opts.sample_num = cfg.get<int64_t>("sample_num", 1);
  opts.training = false;
  return Processor{.file = [opts](const std::string& path) {
    std::mt19937_64 unused;  // the eval slice choice draws nothing
    return AudioMapper({}, opts).features(decode_audio_file(path), unused);
  }};
});

}  // namespace cb
