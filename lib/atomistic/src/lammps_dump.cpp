// LAMMPS text dumps: ITEM: TIMESTEP / NUMBER OF ATOMS / BOX BOUNDS / ATOMS blocks, repeated.
// Triclinic bounds are the bounding box of the tilted cell (LAMMPS Howto triclinic):
// xlo = xlo_bound - min(0, xy, xz, xy + xz), xhi = xhi_bound - max(0, xy, xz, xy + xz),
// ylo = ylo_bound - min(0, yz), yhi = yhi_bound - max(0, yz), z unchanged.

#include "anisoflow/atomistic/lammps_dump.hpp"

#include <algorithm>
#include <charconv>
#include <fstream>
#include <numeric>
#include <optional>
#include <sstream>
#include <string>
#include <system_error>

namespace anisoflow::atomistic {
namespace {

// One line at a time, with its 1-based number, for errors that name the line.
class Lines {
  public:
    Lines(std::string_view text, std::string_view source) : text_(text), source_(source) {}

    bool next(std::string_view& line) {
        if (pos_ >= text_.size()) {
            return false;
        }
        const std::size_t end = std::min(text_.find('\n', pos_), text_.size());
        line = text_.substr(pos_, end - pos_);
        if (!line.empty() && line.back() == '\r') {
            line.remove_suffix(1);
        }
        pos_ = end + 1;
        ++number_;
        return true;
    }
    [[nodiscard]] std::size_t number() const { return number_; }
    [[nodiscard]] std::string where() const { return fmt::format("{}:{}", source_, number_); }

    template <class... Args>
    [[nodiscard]] tl::unexpected<Error> error(fmt::format_string<Args...> format,
                                              Args&&... args) const {
        return fail(ErrorCode::kParse, "{}:{}: {}", source_, number_,
                    fmt::format(format, std::forward<Args>(args)...));
    }
    [[nodiscard]] tl::unexpected<Error> truncated(std::string_view what) const {
        return fail(ErrorCode::kCorrupt, "{}:{}: file ends inside {}", source_, number_, what);
    }

  private:
    std::string_view text_;
    std::string_view source_;
    std::size_t pos_ = 0;
    std::size_t number_ = 0;
};

std::vector<std::string_view> split(std::string_view line) {
    std::vector<std::string_view> out;
    std::size_t i = 0;
    while (i < line.size()) {
        while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) {
            ++i;
        }
        std::size_t j = i;
        while (j < line.size() && line[j] != ' ' && line[j] != '\t') {
            ++j;
        }
        if (j > i) {
            out.push_back(line.substr(i, j - i));
        }
        i = j;
    }
    return out;
}

template <class T>
std::optional<T> number(std::string_view s) {
    T value{};
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
    if (ec != std::errc() || end != s.data() + s.size()) {
        return std::nullopt;
    }
    return value;
}

bool starts_with_item(std::string_view line, std::string_view item) {
    return line.starts_with("ITEM: ") && line.substr(6).starts_with(item);
}

// Coordinate columns in order of preference: wrapped, unwrapped, scaled, scaled unwrapped.
struct CoordinateColumns {
    std::array<std::size_t, 3> index{};
    bool scaled = false;
};

std::optional<CoordinateColumns> find_coordinates(const std::vector<std::string_view>& names) {
    static constexpr std::array<std::array<std::string_view, 3>, 4> kSets{{
        {"x", "y", "z"},
        {"xu", "yu", "zu"},
        {"xs", "ys", "zs"},
        {"xsu", "ysu", "zsu"},
    }};
    for (std::size_t set = 0; set < kSets.size(); ++set) {
        CoordinateColumns c;
        c.scaled = set >= 2;
        bool all = true;
        for (std::size_t k = 0; k < 3; ++k) {
            const auto it = std::find(names.begin(), names.end(), kSets[set][k]);
            if (it == names.end()) {
                all = false;
                break;
            }
            c.index[k] = static_cast<std::size_t>(it - names.begin());
        }
        if (all) {
            return c;
        }
    }
    return std::nullopt;
}

Result<Snapshot> parse_snapshot(Lines& lines, std::string_view first) {
    Snapshot snap;
    std::string_view line = first;
    if (line != "ITEM: TIMESTEP") {
        return lines.error("expected 'ITEM: TIMESTEP', found '{}'", line);
    }
    if (!lines.next(line)) {
        return lines.truncated("TIMESTEP");
    }
    const auto step = number<std::int64_t>(split(line).empty() ? line : split(line).front());
    if (!step || split(line).size() != 1) {
        return lines.error("timestep '{}' is not an integer", line);
    }
    snap.timestep = *step;

    if (!lines.next(line)) {
        return lines.truncated("a snapshot (no NUMBER OF ATOMS)");
    }
    if (line != "ITEM: NUMBER OF ATOMS") {
        return lines.error("expected 'ITEM: NUMBER OF ATOMS', found '{}'", line);
    }
    if (!lines.next(line)) {
        return lines.truncated("NUMBER OF ATOMS");
    }
    const auto fields_n = split(line);
    const auto n_atoms =
        fields_n.size() == 1 ? number<std::int64_t>(fields_n.front()) : std::nullopt;
    if (!n_atoms || *n_atoms < 0) {
        return lines.error("number of atoms '{}' is not a non-negative integer", line);
    }

    if (!lines.next(line)) {
        return lines.truncated("a snapshot (no BOX BOUNDS)");
    }
    if (!starts_with_item(line, "BOX BOUNDS")) {
        return lines.error("expected 'ITEM: BOX BOUNDS ...', found '{}'", line);
    }
    auto flags = split(line.substr(std::string_view("ITEM: BOX BOUNDS").size()));
    const bool triclinic =
        flags.size() >= 3 && flags[0] == "xy" && flags[1] == "xz" && flags[2] == "yz";
    if (triclinic) {
        flags.erase(flags.begin(), flags.begin() + 3);
    }
    if (flags.size() != 3) {
        return lines.error("BOX BOUNDS needs three boundary flags (e.g. 'pp pp pp'), found {}",
                           flags.size());
    }
    for (std::size_t k = 0; k < 3; ++k) {
        if (flags[k] != "pp") {
            return fail(ErrorCode::kUnsupported,
                        "{}: boundary '{}' along {} is not periodic ('pp'); only periodic "
                        "boxes are supported",
                        lines.where(), flags[k], "xyz"[k]);
        }
    }
    std::array<double, 3> lo{};
    std::array<double, 3> hi{};
    std::array<double, 3> tilt{};
    for (std::size_t k = 0; k < 3; ++k) {
        if (!lines.next(line)) {
            return lines.truncated("BOX BOUNDS");
        }
        const auto f = split(line);
        const std::size_t want = triclinic ? 3 : 2;
        std::array<std::optional<double>, 3> v{};
        for (std::size_t m = 0; m < std::min(f.size(), want); ++m) {
            v[m] = number<double>(f[m]);
        }
        if (f.size() != want || !v[0] || !v[1] || (triclinic && !v[2])) {
            return lines.error("box bounds along {} need {} numbers, found '{}'", "xyz"[k], want,
                               line);
        }
        lo[k] = *v[0];
        hi[k] = *v[1];
        tilt[k] = triclinic ? *v[2] : 0.0;
    }
    const double xy = tilt[0];
    const double xz = tilt[1];
    const double yz = tilt[2];
    if (triclinic) {
        lo[0] -= std::min({0.0, xy, xz, xy + xz});
        hi[0] -= std::max({0.0, xy, xz, xy + xz});
        lo[1] -= std::min(0.0, yz);
        hi[1] -= std::max(0.0, yz);
    }
    auto box = Box::create(lo, {hi[0] - lo[0], hi[1] - lo[1], hi[2] - lo[2]}, xy, xz, yz);
    if (!box) {
        return lines.error("{}", box.error().message);
    }
    snap.box = *box;

    if (!lines.next(line)) {
        return lines.truncated("a snapshot (no ATOMS)");
    }
    if (!starts_with_item(line, "ATOMS")) {
        return lines.error("expected 'ITEM: ATOMS ...', found '{}'", line);
    }
    const auto names = split(line.substr(std::string_view("ITEM: ATOMS").size()));
    const auto id_it = std::find(names.begin(), names.end(), "id");
    if (id_it == names.end()) {
        return lines.error("ATOMS has no 'id' column");
    }
    const auto id_col = static_cast<std::size_t>(id_it - names.begin());
    const auto type_it = std::find(names.begin(), names.end(), "type");
    // type_col == names.size(): no type column (every atom is type 1).
    const auto type_col = static_cast<std::size_t>(type_it - names.begin());
    const auto coords = find_coordinates(names);
    if (!coords) {
        return lines.error(
            "ATOMS has no coordinate columns (x y z, xu yu zu, xs ys zs or "
            "xsu ysu zsu)");
    }
    const auto n = static_cast<std::size_t>(*n_atoms);
    std::vector<std::int64_t> ids(n);
    std::vector<int> types(n, 1);
    std::vector<Vec3> pos(n);
    for (std::size_t a = 0; a < n; ++a) {
        if (!lines.next(line)) {
            return lines.truncated(fmt::format("ATOMS (atom {} of {})", a + 1, n));
        }
        if (line.starts_with("ITEM:")) {
            return lines.error("ATOMS block ends after {} of {} atoms", a, n);
        }
        const auto f = split(line);
        if (f.size() != names.size()) {
            return lines.error("{} columns, the ATOMS header names {}", f.size(), names.size());
        }
        const auto id = number<std::int64_t>(f[id_col]);
        if (!id) {
            return lines.error("id '{}' is not an integer", f[id_col]);
        }
        ids[a] = *id;
        if (type_col < names.size()) {
            const auto t = number<int>(f[type_col]);
            if (!t) {
                return lines.error("type '{}' is not an integer", f[type_col]);
            }
            types[a] = *t;
        }
        Vec3 p{};
        for (std::size_t k = 0; k < 3; ++k) {
            const auto v = number<double>(f[coords->index[k]]);
            if (!v) {
                return lines.error("coordinate '{}' is not a number", f[coords->index[k]]);
            }
            p[k] = *v;
        }
        pos[a] = coords->scaled ? snap.box.from_reduced(p) : p;
    }
    // Sort by id: D2_min pairs atoms of two snapshots by position in the arrays.
    std::vector<std::size_t> order(n);
    std::iota(order.begin(), order.end(), std::size_t{0});
    std::sort(order.begin(), order.end(),
              [&](std::size_t a, std::size_t b) { return ids[a] < ids[b]; });
    snap.id.resize(n);
    snap.type.resize(n);
    snap.position.resize(n);
    for (std::size_t a = 0; a < n; ++a) {
        snap.id[a] = ids[order[a]];
        snap.type[a] = types[order[a]];
        snap.position[a] = pos[order[a]];
        if (a > 0 && snap.id[a] == snap.id[a - 1]) {
            return fail(ErrorCode::kCorrupt,
                        "snapshot at timestep {} (ending line {}): atom id {} "
                        "appears twice",
                        snap.timestep, lines.number(), snap.id[a]);
        }
    }
    return snap;
}

}  // namespace

Result<std::vector<Snapshot>> parse_lammps_dump(std::string_view text, std::string_view source) {
    Lines lines(text, source);
    std::vector<Snapshot> out;
    std::string_view line;
    while (lines.next(line)) {
        if (split(line).empty()) {
            continue;  // blank lines between snapshots
        }
        auto snap = parse_snapshot(lines, line);
        if (!snap) {
            return tl::unexpected(snap.error());
        }
        out.push_back(std::move(*snap));
    }
    if (out.empty()) {
        return fail(ErrorCode::kParse, "{}: no snapshot (not a LAMMPS text dump?)", source);
    }
    return out;
}

Result<std::vector<Snapshot>> read_lammps_dump(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        return fail(ErrorCode::kNotFound, "{}: cannot open LAMMPS dump", path.string());
    }
    std::ostringstream buffer;
    buffer << in.rdbuf();
    if (in.bad()) {
        return fail(ErrorCode::kIo, "{}: read error", path.string());
    }
    return parse_lammps_dump(buffer.str(), path.string());
}

}  // namespace anisoflow::atomistic
