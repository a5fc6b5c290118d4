#include "anisoflow/reduce/corrections.hpp"

#include <string>
#include <variant>

namespace anisoflow::reduce {

Result<void> DetectorCorrections::validate(FrameShape detector_shape) const {
    std::string problems;
    const auto check = [&](const char* name, std::size_t size) {
        if (size != 0 && size != detector_shape.pixel_count()) {
            problems += fmt::format("{}{} has {} pixels but the detector has {}x{} = {}",
                                    problems.empty() ? "" : "; ", name, size, detector_shape.rows,
                                    detector_shape.cols, detector_shape.pixel_count());
        }
    };
    check("dark", dark_counts.size());
    check("flat", flat.size());
    check("mask", mask.size());
    if (saturation_counts && !(*saturation_counts > 0.0)) {
        problems += fmt::format("{}saturation level {} is not positive",
                                problems.empty() ? "" : "; ", *saturation_counts);
    }
    if (polarization_factor && !(*polarization_factor >= -1.0 && *polarization_factor <= 1.0)) {
        problems += fmt::format("{}polarization factor {} is outside [-1, 1]",
                                problems.empty() ? "" : "; ", *polarization_factor);
    }
    if (!problems.empty()) {
        return fail(ErrorCode::kInvalidArgument, "{}", problems);
    }
    return {};
}

Result<void> FrameAverager::add(const FrameView& frame) {
    const std::size_t size =
        std::visit([](const auto& pixels) { return pixels.size(); }, frame.pixels);
    if (size != frame.shape.pixel_count()) {
        return fail(ErrorCode::kCorrupt, "frame holds {} pixels but its shape {}x{} needs {}", size,
                    frame.shape.rows, frame.shape.cols, frame.shape.pixel_count());
    }
    if (frame_count_ == 0) {
        shape_ = frame.shape;
        sum_.assign(frame.shape.pixel_count(), 0.0);
    } else if (frame.shape != shape_) {
        return fail(ErrorCode::kInvalidArgument,
                    "frame shape {}x{} differs from the {}x{} of the frames averaged before",
                    frame.shape.rows, frame.shape.cols, shape_.rows, shape_.cols);
    }
    std::visit(
        [this](const auto& pixels) {
            for (std::size_t i = 0; i < sum_.size(); ++i) {
                sum_[i] += static_cast<double>(pixels[i]);
            }
        },
        frame.pixels);
    ++frame_count_;
    return {};
}

Result<std::vector<float>> FrameAverager::mean() const {
    if (frame_count_ == 0) {
        return fail(ErrorCode::kInvalidArgument, "no frame to average");
    }
    std::vector<float> mean(sum_.size());
    const double scale = 1.0 / static_cast<double>(frame_count_);
    for (std::size_t i = 0; i < sum_.size(); ++i) {
        mean[i] = static_cast<float>(sum_[i] * scale);
    }
    return mean;
}

}  // namespace anisoflow::reduce
