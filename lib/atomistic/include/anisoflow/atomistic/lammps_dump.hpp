#pragma once
// LAMMPS text dumps (`dump atom` / `dump custom`, the `ITEM:` format): several snapshots per
// file, orthogonal or triclinic periodic boxes, coordinates x/xu/xs/xsu found by column name.

#include <cstdint>
#include <filesystem>
#include <string_view>
#include <vector>

#include "anisoflow/atomistic/box.hpp"
#include "anisoflow/core/result.hpp"

namespace anisoflow::atomistic {

/// One configuration: atoms sorted by id, Cartesian positions (scaled coordinates are converted
/// with the snapshot's box; unwrapped ones are kept as they are, possibly outside the box).
struct Snapshot {
    std::int64_t timestep = 0;
    Box box;
    std::vector<std::int64_t> id;
    std::vector<int> type;  ///< 1 where the dump has no `type` column
    std::vector<Vec3> position;
    [[nodiscard]] std::size_t size() const { return id.size(); }
};

/// Parses every snapshot of a dump held in memory; `source` names it in errors
/// ("run.dump:12: ..."). Refuses non-periodic boundaries, missing coordinate columns, duplicate
/// ids, short or non-numeric lines and truncated snapshots.
Result<std::vector<Snapshot>> parse_lammps_dump(std::string_view text, std::string_view source);

/// Reads and parses a dump file.
Result<std::vector<Snapshot>> read_lammps_dump(const std::filesystem::path& path);

}  // namespace anisoflow::atomistic
