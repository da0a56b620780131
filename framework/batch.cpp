#include "framework/batch.h"

namespace cb {

int64_t Batch::size() const {
  if (image.defined()) return image.size(0);
  if (audio.defined()) return audio.size(0);
  return int64_t(std::max(text_input.size(), conversation.size()));
}

}  // namespace cb
