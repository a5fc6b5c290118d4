#include "anisoflow/archive/run_reader.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string_view>

#include <fmt/format.h>
#include <google/protobuf/util/json_util.h>

#include "archive_layout.hpp"

namespace anisoflow::archive {

namespace {

using detail::Hid;

class Reader {
  public:
    Reader(hid_t file, std::string name) : file_(file), name_(std::move(name)) {}

    [[nodiscard]] bool exists(const std::string& path) const {
        return H5Lexists(file_, path.c_str(), H5P_DEFAULT) > 0;
    }

    // Every element of a dataset converted to `memory_type` (numbers), or to its own type
    // (enums: one byte each).
    template <class T>
    Result<std::vector<T>> values(const std::string& path, hid_t memory_type) const {
        Hid dataset = detail::dataset_handle(H5Dopen2(file_, path.c_str(), H5P_DEFAULT));
        if (!dataset) {
            return fail(ErrorCode::kNotFound, "{}: no dataset {}", name_, path);
        }
        Hid space = detail::space_handle(H5Dget_space(dataset.get()));
        const hssize_t n = space ? H5Sget_simple_extent_npoints(space.get()) : -1;
        if (n < 0) {
            return fail(ErrorCode::kIo, "{}: cannot read the shape of {}", name_, path);
        }
        std::vector<T> out(static_cast<std::size_t>(n));
        Hid own_type = detail::type_handle(H5Dget_type(dataset.get()));
        const hid_t type = memory_type >= 0 ? memory_type : own_type.get();
        if (n > 0 && H5Dread(dataset.get(), type, H5S_ALL, H5S_ALL, H5P_DEFAULT, out.data()) < 0) {
            return fail(ErrorCode::kIo, "{}: cannot read {}: {}", name_, path,
                        detail::hdf5_error_detail());
        }
        return out;
    }

    // A scalar string (fixed or variable length); fixed strings end at their first NUL.
    Result<std::string> text(const std::string& path) const {
        Hid dataset = detail::dataset_handle(H5Dopen2(file_, path.c_str(), H5P_DEFAULT));
        if (!dataset) {
            return fail(ErrorCode::kNotFound, "{}: no dataset {}", name_, path);
        }
        Hid type = detail::type_handle(H5Dget_type(dataset.get()));
        if (H5Tis_variable_str(type.get()) > 0) {
            char* data = nullptr;
            if (H5Dread(dataset.get(), type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, &data) < 0) {
                return fail(ErrorCode::kIo, "{}: cannot read {}", name_, path);
            }
            std::string out = data == nullptr ? "" : data;
            H5free_memory(data);
            return out;
        }
        std::string buffer(H5Tget_size(type.get()), '\0');
        if (H5Dread(dataset.get(), type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, buffer.data()) < 0) {
            return fail(ErrorCode::kIo, "{}: cannot read {}", name_, path);
        }
        return std::string(buffer.c_str());
    }

    // A 1-D fixed-length string dataset.
    Result<std::vector<std::string>> texts(const std::string& path) const {
        Hid dataset = detail::dataset_handle(H5Dopen2(file_, path.c_str(), H5P_DEFAULT));
        if (!dataset) {
            return fail(ErrorCode::kNotFound, "{}: no dataset {}", name_, path);
        }
        Hid type = detail::type_handle(H5Dget_type(dataset.get()));
        Hid space = detail::space_handle(H5Dget_space(dataset.get()));
        const auto n = static_cast<std::size_t>(
            std::max<hssize_t>(0, space ? H5Sget_simple_extent_npoints(space.get()) : 0));
        const std::size_t size = H5Tget_size(type.get());
        std::string buffer(n * size, '\0');
        if (n > 0 &&
            H5Dread(dataset.get(), type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, buffer.data()) < 0) {
            return fail(ErrorCode::kIo, "{}: cannot read {}", name_, path);
        }
        std::vector<std::string> out;
        for (std::size_t i = 0; i < n; ++i) {
            const char* entry = buffer.data() + i * size;
            out.emplace_back(entry, strnlen(entry, size));
        }
        return out;
    }

  private:
    hid_t file_;
    std::string name_;
};

template <class T>
T at_or(const std::vector<T>& values, std::size_t i, T fallback) {
    return i < values.size() ? values[i] : fallback;
}

}  // namespace

Result<ArchivedRun> read_run(const std::filesystem::path& path) {
    detail::silence_hdf5_errors();
    const std::string name = path.string();
    // SWMR read: a run still being written is read as its writer last flushed it.
    Hid file =
        detail::file_handle(H5Fopen(name.c_str(), H5F_ACC_RDONLY | H5F_ACC_SWMR_READ, H5P_DEFAULT));
    if (!file) {
        file = detail::file_handle(H5Fopen(name.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT));
    }
    if (!file) {
        return fail(ErrorCode::kIo, "{}: not a readable HDF5 file: {}", name,
                    detail::hdf5_error_detail());
    }
    const Reader in(file.get(), name);
    ArchivedRun run;
    auto run_id = in.text("/entry/entry_identifier");
    if (!run_id) {
        return tl::unexpected(run_id.error().with_context("not an anisoflow run file"));
    }
    run.start.set_run_id(*run_id);
    auto state = in.text("/entry/run_state");
    if (!state) {
        return tl::unexpected(state.error());
    }
    run.state = *state;
    if (auto detail = in.text("/entry/run_end_detail")) {
        run.end_detail = *detail;
    }
    if (auto configuration = in.text("/entry/process/configuration")) {
        google::protobuf::util::JsonParseOptions options;
        options.ignore_unknown_fields = true;  // a file from a newer version
        (void)google::protobuf::util::JsonStringToMessage(*configuration,
                                                          run.start.mutable_config(), options);
    }

    const std::string results = "/entry/results";
    auto mechanism = in.values<std::uint8_t>(results + "/mechanism", -1);
    auto is_final = in.values<std::uint8_t>(results + "/is_final", H5T_NATIVE_UINT8);
    auto frames_p = in.values<std::uint64_t>(results + "/frames_p", H5T_NATIVE_UINT64);
    auto frames_n = in.values<std::uint64_t>(results + "/frames_n", H5T_NATIVE_UINT64);
    for (const auto* column : {&mechanism, &is_final}) {
        if (!*column) {
            return tl::unexpected(column->error());
        }
    }
    if (!frames_p || !frames_n) {
        return tl::unexpected((frames_p ? frames_n : frames_p).error());
    }
    const std::size_t rows = mechanism->size();
    run.results.resize(rows);
    for (std::size_t i = 0; i < rows; ++i) {
        pb::AnalysisResult& r = run.results[i];
        r.set_run_id(*run_id);
        r.set_mechanism(static_cast<pb::Mechanism>((*mechanism)[i]));
        r.set_is_final(at_or<std::uint8_t>(*is_final, i, 0) != 0);
        r.set_n_frames_p(at_or<std::uint64_t>(*frames_p, i, 0));
        r.set_n_frames_n(at_or<std::uint64_t>(*frames_n, i, 0));
        r.set_mode(run.start.config().mode());
        r.set_normalisation(run.start.config().normalisation());
    }
    for (const detail::ResultField& field : detail::result_double_fields()) {
        auto column = in.values<double>(results + "/" + std::string(field.name), H5T_NATIVE_DOUBLE);
        if (!column) {
            return tl::unexpected(column.error());
        }
        // The same fields, by name, through the message's reflection: one list of keys.
        const auto* descriptor =
            pb::AnalysisResult::descriptor()->FindFieldByName(std::string(field.name));
        if (descriptor == nullptr) {
            continue;
        }
        for (std::size_t i = 0; i < rows && i < column->size(); ++i) {
            const double value = (*column)[i];
            if (field.name == "r_c_angstrom" && std::isnan(value)) {
                continue;  // absent (SPEC 8: null)
            }
            run.results[i].GetReflection()->SetDouble(&run.results[i], descriptor, value);
        }
    }

    for (std::size_t k = 0; k < detail::kCurveNames.size(); ++k) {
        const std::string_view group = detail::kCurveNames[k].group;
        const std::string_view x_name = detail::kCurveNames[k].x_name;
        const std::string base = results + "/" + std::string(group);
        auto x = in.values<double>(base + "/" + std::string(x_name), H5T_NATIVE_DOUBLE);
        auto value = in.values<double>(base + "/value", H5T_NATIVE_DOUBLE);
        auto variance = in.values<double>(base + "/variance", H5T_NATIVE_DOUBLE);
        if (!x || !value || !variance || x->empty() || value->size() != x->size() ||
            variance->size() != x->size()) {
            continue;  // a curve the run never had
        }
        std::vector<double> columns = std::move(*x);
        columns.insert(columns.end(), value->begin(), value->end());
        columns.insert(columns.end(), variance->begin(), variance->end());
        run.curves.emplace_back(static_cast<pb::CurveKind>(k + 1), std::move(columns));
    }

    if (in.exists("/entry/run_log")) {
        auto change = in.values<std::uint8_t>("/entry/run_log/change", -1);
        auto kind = in.values<std::uint8_t>("/entry/run_log/kind", -1);
        auto orientation = in.values<std::uint8_t>("/entry/run_log/orientation", -1);
        auto next = in.values<std::uint64_t>("/entry/run_log/next_sequence", H5T_NATIVE_UINT64);
        auto changed = in.values<std::int64_t>("/entry/run_log/changed_unix_ns", H5T_NATIVE_INT64);
        auto notes = in.texts("/entry/run_log/note");
        if (change && kind && orientation && next && changed && notes) {
            for (std::size_t i = 0; i < change->size(); ++i) {
                pb::StateChange c;
                c.set_index(static_cast<std::uint32_t>(i));
                c.set_type(static_cast<pb::StateChangeType>((*change)[i]));
                c.set_kind(static_cast<pb::FrameKind>(at_or<std::uint8_t>(*kind, i, 0)));
                c.set_orientation(
                    static_cast<pb::Orientation>(at_or<std::uint8_t>(*orientation, i, 0)));
                c.set_next_sequence(at_or<std::uint64_t>(*next, i, 0));
                c.set_changed_unix_ns(at_or<std::int64_t>(*changed, i, 0));
                c.set_note(at_or<std::string>(*notes, i, ""));
                run.run_log.push_back(std::move(c));
            }
        }
    }
    return run;
}

}  // namespace anisoflow::archive
