#include "anisoflow/reduce/corrections.hpp"

#include <algorithm>
#include <cmath>
#include <string>
#include <variant>

namespace anisoflow::reduce {

std::string_view to_string(VarianceModel model) {
    switch (model) {
        case VarianceModel::kPoisson:
            return "poisson";
        case VarianceModel::kIntegrating:
            return "integrating";
    }
    return "unknown";
}

Result<VarianceModel> parse_variance_model(std::string_view name) {
    if (name == "poisson") {
        return VarianceModel::kPoisson;
    }
    if (name == "integrating") {
        return VarianceModel::kIntegrating;
    }
    return fail(ErrorCode::kInvalidArgument,
                "variance model '{}' is not one of: poisson, integrating", name);
}

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
    if (variance_model == VarianceModel::kIntegrating) {
        if (!read_noise_counts) {
            problems += fmt::format(
                "{}the integrating variance model needs the read noise: give "
                "it, or at least 2 dark frames to estimate it from",
                problems.empty() ? "" : "; ");
        } else if (!(*read_noise_counts >= 0.0) || !std::isfinite(*read_noise_counts)) {
            problems += fmt::format("{}read noise {} counts is not a finite value >= 0",
                                    problems.empty() ? "" : "; ", *read_noise_counts);
        }
        if (!(counts_per_photon > 0.0) || !std::isfinite(counts_per_photon)) {
            problems += fmt::format("{}{} counts per photon is not positive",
                                    problems.empty() ? "" : "; ", counts_per_photon);
        }
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
        sum_squares_.assign(frame.shape.pixel_count(), 0.0);
    } else if (frame.shape != shape_) {
        return fail(ErrorCode::kInvalidArgument,
                    "frame shape {}x{} differs from the {}x{} of the frames averaged before",
                    frame.shape.rows, frame.shape.cols, shape_.rows, shape_.cols);
    }
    std::visit(
        [this](const auto& pixels) {
            for (std::size_t i = 0; i < sum_.size(); ++i) {
                const auto value = static_cast<double>(pixels[i]);
                sum_[i] += value;
                sum_squares_[i] += value * value;
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

Result<double> FrameAverager::mean_pixel_variance(std::span<const std::uint8_t> mask) const {
    if (frame_count_ < 2) {
        return fail(ErrorCode::kInvalidArgument, "a pixel variance needs at least 2 frames, not {}",
                    frame_count_);
    }
    if (!mask.empty() && mask.size() != sum_.size()) {
        return fail(ErrorCode::kInvalidArgument, "mask has {} pixels but the frames have {}",
                    mask.size(), sum_.size());
    }
    const auto n = static_cast<double>(frame_count_);
    double total = 0.0;
    std::size_t pixels = 0;
    for (std::size_t i = 0; i < sum_.size(); ++i) {
        if (!mask.empty() && mask[i] != 0) {
            continue;
        }
        // sum (v - mean)^2 = sum v^2 - (sum v)^2 / n; dark levels of 1e2-1e4 counts keep the
        // cancellation far above double precision.
        const double squares = sum_squares_[i] - sum_[i] * sum_[i] / n;
        if (std::isfinite(squares)) {
            total += std::max(squares, 0.0) / (n - 1.0);
            ++pixels;
        }
    }
    if (pixels == 0) {
        return fail(ErrorCode::kInvalidArgument, "no unmasked pixel to take a variance over");
    }
    return total / static_cast<double>(pixels);
}

}  // namespace anisoflow::reduce
