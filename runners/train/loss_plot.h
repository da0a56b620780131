// The end-of-run plot of the training curves: metrics.jsonl's logged steps drawn as an SVG (written by
// hand: no plotting library on the machine), two panels sharing the step axis: loss (each logged step's
// loss, and loss_avg, the mean since the previous line) and the learning rate. A step logged twice (a
// restarted run replays the steps after its checkpoint) is drawn once, with its last value.
#pragma once
#include <filesystem>

namespace cb {

// Reads <metrics_jsonl>, writes <svg> (atomically); returns the number of steps drawn. No logged step:
// no file, 0.
size_t write_loss_plot(const std::filesystem::path& metrics_jsonl, const std::filesystem::path& svg);

}  // namespace cb
