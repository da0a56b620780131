// Arbitrary bytes as a zip archive: the reader must refuse garbage with a cb::Error, and every record
// it accepts must lie inside the buffer (ASan checks the reads below).
#include <cstddef>
#include <cstdint>

#include "framework/checkpoint/zip_reader.h"
#include "framework/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    cb::ZipReader zip(data, size, "fuzz.zip");
    unsigned sum = 0;
    for (const auto& r : zip.records()) {
      auto bytes = zip.data(r);
      for (uint8_t b : bytes) sum += b;
    }
    (void)sum;
  } catch (const cb::Error&) {
  }
  return 0;
}
