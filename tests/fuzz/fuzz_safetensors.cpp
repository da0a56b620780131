// Arbitrary bytes as a safetensors file: a cb::Error or a valid header, nothing else.
#include <cstddef>
#include <cstdint>

#include "framework/checkpoint/safetensors.h"
#include "framework/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    cb::SafetensorsFile::validate_buffer(data, size, "fuzz.safetensors");
  } catch (const cb::Error&) {
  }
  return 0;
}
