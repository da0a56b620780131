#include "runners/train/loss_plot.h"

#include <spdlog/fmt/fmt.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "framework/checkpoint/atomic_file.h"
#include "framework/error.h"

namespace cb {
namespace {

struct Point {
  double loss = 0, loss_avg = 0, lr = 0;
};

constexpr double kWidth = 800, kPanel = 260, kLeft = 80, kRight = 20, kTop = 30, kBottom = 40;

// One panel: axes, 5 labelled ticks per axis, a polyline per series (its points in step order).
class Panel {
 public:
  Panel(double top, double x0, double x1, double y0, double y1) : top_(top), x0_(x0), x1_(x1), y0_(y0), y1_(y1) {
    if (x1_ <= x0_) x1_ = x0_ + 1;
    if (y1_ <= y0_) {  // a flat series: a band around it
      const double pad = y0_ == 0 ? 1 : std::abs(y0_) * 0.05;
      y0_ -= pad, y1_ += pad;
    }
  }
  double x(double step) const { return kLeft + (step - x0_) / (x1_ - x0_) * (kWidth - kLeft - kRight); }
  double y(double v) const { return top_ + kTop + (y1_ - v) / (y1_ - y0_) * (kPanel - kTop - kBottom); }

  std::string frame(const std::string& title) const {
    const double bottom = y(y0_), left = kLeft, right = kWidth - kRight;
    std::string s = fmt::format(
        "<text x=\"{:.1f}\" y=\"{:.1f}\" font-size=\"14\" font-weight=\"bold\">{}</text>\n"
        "<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{:.1f}\" fill=\"none\" stroke=\"#444\"/>\n",
        left, top_ + 20, title, left, y(y1_), right - left, bottom - y(y1_));
    for (int k = 0; k <= 4; ++k) {
      const double v = y0_ + (y1_ - y0_) * k / 4, st = x0_ + (x1_ - x0_) * k / 4;
      s += fmt::format(
          "<line x1=\"{0:.1f}\" y1=\"{1:.1f}\" x2=\"{2:.1f}\" y2=\"{1:.1f}\" stroke=\"#ddd\"/>"
          "<text x=\"{3:.1f}\" y=\"{4:.1f}\" font-size=\"11\" text-anchor=\"end\">{5:.3g}</text>\n"
          "<text x=\"{6:.1f}\" y=\"{7:.1f}\" font-size=\"11\" text-anchor=\"middle\">{8:.0f}</text>\n",
          left, y(v), right, left - 6, y(v) + 4, v, x(st), bottom + 16, st + 1);
    }
    return s + fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" font-size=\"11\" text-anchor=\"middle\">step</text>\n",
                           (left + right) / 2, bottom + 32);
  }

  std::string polyline(const std::string& id, const std::string& style, const std::vector<double>& steps,
                       const std::vector<double>& values) const {
    std::string pts;
    for (size_t i = 0; i < steps.size(); ++i)
      pts += fmt::format("{}{:.2f},{:.2f}", i ? " " : "", x(steps[i]), y(values[i]));
    return fmt::format("<polyline id=\"{}\" fill=\"none\" {} points=\"{}\"/>\n", id, style, pts);
  }

 private:
  double top_, x0_, x1_, y0_, y1_;
};

}  // namespace

size_t write_loss_plot(const std::filesystem::path& metrics_jsonl, const std::filesystem::path& svg) {
  std::ifstream in(metrics_jsonl);
  if (!in) fail("{}: cannot open the training record to plot it", metrics_jsonl.string());
  std::map<int64_t, Point> by_step;
  int64_t line_no = 0;
  for (std::string line; std::getline(in, line);) {
    ++line_no;
    if (line.empty()) continue;
    const auto j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) {
      if (in.peek() == EOF) break;  // a last line cut by a kill
      fail("{}:{}: not a JSON line", metrics_jsonl.string(), line_no);
    }
    if (!j.contains("loss")) continue;  // a validation line
    // A NaN loss is written as null (JSON has no NaN): that point is left out of its line.
    const auto number = [&](const char* key) {
      const auto& v = j.at(key);
      return v.is_null() ? std::numeric_limits<double>::quiet_NaN() : v.get<double>();
    };
    by_step[j.at("step").get<int64_t>()] = {number("loss"), number("loss_avg"), number("lr")};
  }
  if (by_step.empty()) return 0;

  std::vector<double> steps, loss_steps, loss, avg_steps, loss_avg, lr;
  for (const auto& [s, p] : by_step) {
    const auto step = static_cast<double>(s);
    steps.push_back(step), lr.push_back(p.lr);
    if (std::isfinite(p.loss)) loss_steps.push_back(step), loss.push_back(p.loss);
    if (std::isfinite(p.loss_avg)) avg_steps.push_back(step), loss_avg.push_back(p.loss_avg);
  }
  const auto lo = [](const auto& a, const auto& b) {
    double m = std::numeric_limits<double>::infinity();
    for (const auto* v : {&a, &b})
      if (!v->empty()) m = std::min(m, *std::min_element(v->begin(), v->end()));
    return std::isfinite(m) ? m : 0.0;  // no finite loss at all: an empty panel
  };
  const auto hi = [](const auto& a, const auto& b) {
    double m = -std::numeric_limits<double>::infinity();
    for (const auto* v : {&a, &b})
      if (!v->empty()) m = std::max(m, *std::max_element(v->begin(), v->end()));
    return std::isfinite(m) ? m : 0.0;
  };
  const Panel top(0, steps.front(), steps.back(), lo(loss, loss_avg), hi(loss, loss_avg));
  const Panel bottom(kPanel, steps.front(), steps.back(), lo(lr, lr), hi(lr, lr));

  std::string s = fmt::format(
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{0:.0f}\" height=\"{1:.0f}\" viewBox=\"0 0 {0:.0f} {1:.0f}\" "
      "font-family=\"sans-serif\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n",
      kWidth, 2 * kPanel);
  s += top.frame(fmt::format("loss ({} logged steps; blue: the step's loss, orange: loss_avg)", steps.size()));
  s += top.polyline("loss", "stroke=\"#1f77b4\" stroke-width=\"1\"", loss_steps, loss);
  s += top.polyline("loss_avg", "stroke=\"#ff7f0e\" stroke-width=\"2\"", avg_steps, loss_avg);
  s += bottom.frame("learning rate");
  s += bottom.polyline("lr", "stroke=\"#2ca02c\" stroke-width=\"2\"", steps, lr);
  s += "</svg>\n";
  atomic_write_file(svg, s);
  return steps.size();
}

}  // namespace cb
