#include "anisoflow/runtime/config_loader.hpp"

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <fstream>
#include <limits>
#include <optional>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

#include <fmt/format.h>
#include <google/protobuf/descriptor.h>
#include <toml++/toml.h>

#include "default_configs.hpp"

namespace anisoflow::runtime {

namespace {

namespace pb = google::protobuf;

// Where a value came from and every problem found so far: a file is read to the end so that one
// run reports all its mistakes.
struct Context {
    std::string source;  // "ingest.toml", "--set"
    bool has_lines;      // false for --set values, which have no line
    std::vector<std::string> problems;

    void add(const toml::source_region& where, std::string_view key_path, std::string text) {
        if (has_lines && where.begin.line > 0) {
            problems.push_back(
                fmt::format("{}:{}: {}: {}", source, where.begin.line, key_path, text));
        } else {
            problems.push_back(fmt::format("{}: {}: {}", source, key_path, text));
        }
    }
};

std::string join_path(std::string_view prefix, std::string_view key) {
    return prefix.empty() ? std::string(key) : fmt::format("{}.{}", prefix, key);
}

std::string_view describe(const toml::node& node) {
    switch (node.type()) {
        case toml::node_type::table:
            return "a table";
        case toml::node_type::array:
            return "an array";
        case toml::node_type::string:
            return "a string";
        case toml::node_type::integer:
            return "an integer";
        case toml::node_type::floating_point:
            return "a float";
        case toml::node_type::boolean:
            return "a boolean";
        case toml::node_type::date:
        case toml::node_type::time:
        case toml::node_type::date_time:
            return "a date or time";
        case toml::node_type::none:
            break;
    }
    return "nothing";
}

// What a field wants, in words, for type mismatch messages.
std::string wanted(const pb::FieldDescriptor& field) {
    switch (field.cpp_type()) {
        case pb::FieldDescriptor::CPPTYPE_INT32:
            return "an integer (int32)";
        case pb::FieldDescriptor::CPPTYPE_INT64:
            return "an integer (int64)";
        case pb::FieldDescriptor::CPPTYPE_UINT32:
            return "a non-negative integer (uint32)";
        case pb::FieldDescriptor::CPPTYPE_UINT64:
            return "a non-negative integer (uint64)";
        case pb::FieldDescriptor::CPPTYPE_DOUBLE:
        case pb::FieldDescriptor::CPPTYPE_FLOAT:
            return "a number";
        case pb::FieldDescriptor::CPPTYPE_BOOL:
            return "a boolean (true or false)";
        case pb::FieldDescriptor::CPPTYPE_STRING:
            return "a string";
        case pb::FieldDescriptor::CPPTYPE_ENUM:
            return "a string naming a value of " + field.enum_type()->name();
        case pb::FieldDescriptor::CPPTYPE_MESSAGE:
            return "a table";
    }
    return "a value";
}

// LogLevel -> LOG_LEVEL: the prefix every value of a style-conforming enum carries.
std::string enum_prefix(const pb::EnumDescriptor& type) {
    std::string prefix;
    for (std::size_t i = 0; i < type.name().size(); ++i) {
        const char c = type.name()[i];
        if (i > 0 && std::isupper(static_cast<unsigned char>(c)) != 0) {
            prefix += '_';
        }
        prefix += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    }
    return prefix + "_";
}

// The name written in TOML: LOG_LEVEL_INFO -> "info" (the full name is accepted too).
std::string short_enum_name(const pb::EnumValueDescriptor& value) {
    const std::string prefix = enum_prefix(*value.type());
    std::string name =
        value.name().starts_with(prefix) ? value.name().substr(prefix.size()) : value.name();
    for (char& c : name) {
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
    return name;
}

const pb::EnumValueDescriptor* find_enum_value(const pb::EnumDescriptor& type,
                                               std::string_view text) {
    if (const auto* exact = type.FindValueByName(std::string(text))) {
        return exact;
    }
    for (int i = 0; i < type.value_count(); ++i) {
        if (short_enum_name(*type.value(i)) == text) {
            return type.value(i);
        }
    }
    return nullptr;
}

std::string enum_choices(const pb::EnumDescriptor& type) {
    std::string choices;
    for (int i = 0; i < type.value_count(); ++i) {
        if (type.value(i)->number() == 0) {
            continue;  // X_UNSPECIFIED: never a choice a user makes
        }
        choices += (choices.empty() ? "" : ", ") + short_enum_name(*type.value(i));
    }
    return choices;
}

std::string field_names(const pb::Descriptor& type) {
    std::string names;
    for (int i = 0; i < type.field_count(); ++i) {
        names += (names.empty() ? "" : ", ") + type.field(i)->name();
    }
    return names;
}

// Whether `text` is well-formed UTF-8 (RFC 3629: no overlong forms, surrogates or values past
// U+10FFFF). Protobuf string fields must be, or every peer fails to parse the message.
bool is_utf8(std::string_view text) {
    std::size_t i = 0;
    while (i < text.size()) {
        const auto lead = static_cast<unsigned char>(text[i]);
        std::size_t length = 0;
        unsigned char low = 0x80;
        unsigned char high = 0xBF;
        if (lead < 0x80) {
            ++i;
            continue;
        }
        if (lead >= 0xC2 && lead <= 0xDF) {
            length = 2;
        } else if (lead >= 0xE0 && lead <= 0xEF) {
            length = 3;
            low = lead == 0xE0 ? 0xA0 : 0x80;
            high = lead == 0xED ? 0x9F : 0xBF;
        } else if (lead >= 0xF0 && lead <= 0xF4) {
            length = 4;
            low = lead == 0xF0 ? 0x90 : 0x80;
            high = lead == 0xF4 ? 0x8F : 0xBF;
        } else {
            return false;
        }
        if (text.size() - i < length) {
            return false;
        }
        for (std::size_t k = 1; k < length; ++k) {
            const auto byte = static_cast<unsigned char>(text[i + k]);
            if (byte < (k == 1 ? low : 0x80) || byte > (k == 1 ? high : 0xBF)) {
                return false;
            }
        }
        i += length;
    }
    return true;
}

void merge_table(pb::Message& message, const toml::table& table, const std::string& prefix,
                 Context& context);

// An integer that fits [low, high], or a problem reported.
template <class T>
std::optional<T> integer_in_range(const toml::node& node, const pb::FieldDescriptor& field,
                                  const std::string& path, Context& context) {
    const auto* integer = node.as_integer();
    if (integer == nullptr) {
        context.add(node.source(), path,
                    fmt::format("expected {}, found {}", wanted(field), describe(node)));
        return std::nullopt;
    }
    const std::int64_t value = integer->get();
    bool in_range = true;
    if constexpr (std::is_signed_v<T>) {
        in_range = value >= std::numeric_limits<T>::min() && value <= std::numeric_limits<T>::max();
    } else {
        in_range = value >= 0 && static_cast<std::uint64_t>(value) <= std::numeric_limits<T>::max();
    }
    if (!in_range) {
        context.add(node.source(), path,
                    fmt::format("{} is out of range for {}", value, wanted(field)));
        return std::nullopt;
    }
    return static_cast<T>(value);
}

std::optional<double> number(const toml::node& node, const pb::FieldDescriptor& field,
                             const std::string& path, Context& context) {
    if (const auto* real = node.as_floating_point()) {
        return real->get();
    }
    if (const auto* integer = node.as_integer()) {
        return static_cast<double>(integer->get());
    }
    context.add(node.source(), path,
                fmt::format("expected {}, found {}", wanted(field), describe(node)));
    return std::nullopt;
}

// Sets (or, for a repeated field, appends) one value of `field` from `node`.
void set_value(pb::Message& message, const pb::FieldDescriptor& field, const toml::node& node,
               const std::string& path, Context& context) {
    const pb::Reflection& reflection = *message.GetReflection();
    const bool repeated = field.is_repeated();
    switch (field.cpp_type()) {
        case pb::FieldDescriptor::CPPTYPE_INT32:
            if (auto v = integer_in_range<std::int32_t>(node, field, path, context)) {
                repeated ? reflection.AddInt32(&message, &field, *v)
                         : reflection.SetInt32(&message, &field, *v);
            }
            return;
        case pb::FieldDescriptor::CPPTYPE_INT64:
            if (auto v = integer_in_range<std::int64_t>(node, field, path, context)) {
                repeated ? reflection.AddInt64(&message, &field, *v)
                         : reflection.SetInt64(&message, &field, *v);
            }
            return;
        case pb::FieldDescriptor::CPPTYPE_UINT32:
            if (auto v = integer_in_range<std::uint32_t>(node, field, path, context)) {
                repeated ? reflection.AddUInt32(&message, &field, *v)
                         : reflection.SetUInt32(&message, &field, *v);
            }
            return;
        case pb::FieldDescriptor::CPPTYPE_UINT64:
            if (auto v = integer_in_range<std::uint64_t>(node, field, path, context)) {
                repeated ? reflection.AddUInt64(&message, &field, *v)
                         : reflection.SetUInt64(&message, &field, *v);
            }
            return;
        case pb::FieldDescriptor::CPPTYPE_DOUBLE:
            if (auto v = number(node, field, path, context)) {
                repeated ? reflection.AddDouble(&message, &field, *v)
                         : reflection.SetDouble(&message, &field, *v);
            }
            return;
        case pb::FieldDescriptor::CPPTYPE_FLOAT:
            if (auto v = number(node, field, path, context)) {
                const auto f = static_cast<float>(*v);
                repeated ? reflection.AddFloat(&message, &field, f)
                         : reflection.SetFloat(&message, &field, f);
            }
            return;
        case pb::FieldDescriptor::CPPTYPE_BOOL:
            if (const auto* flag = node.as_boolean()) {
                repeated ? reflection.AddBool(&message, &field, flag->get())
                         : reflection.SetBool(&message, &field, flag->get());
            } else {
                context.add(node.source(), path,
                            fmt::format("expected {}, found {}", wanted(field), describe(node)));
            }
            return;
        case pb::FieldDescriptor::CPPTYPE_STRING:
            if (const auto* text = node.as_string()) {
                repeated ? reflection.AddString(&message, &field, text->get())
                         : reflection.SetString(&message, &field, text->get());
            } else {
                context.add(node.source(), path,
                            fmt::format("expected {}, found {}", wanted(field), describe(node)));
            }
            return;
        case pb::FieldDescriptor::CPPTYPE_ENUM: {
            const auto* text = node.as_string();
            if (text == nullptr) {
                context.add(node.source(), path,
                            fmt::format("expected {} ({}), found {}", wanted(field),
                                        enum_choices(*field.enum_type()), describe(node)));
                return;
            }
            const auto* value = find_enum_value(*field.enum_type(), text->get());
            if (value == nullptr) {
                context.add(node.source(), path,
                            fmt::format("'{}' is not one of {}", text->get(),
                                        enum_choices(*field.enum_type())));
                return;
            }
            repeated ? reflection.AddEnum(&message, &field, value)
                     : reflection.SetEnum(&message, &field, value);
            return;
        }
        case pb::FieldDescriptor::CPPTYPE_MESSAGE: {
            const auto* table = node.as_table();
            if (table == nullptr) {
                context.add(node.source(), path,
                            fmt::format("expected a table (keys: {}), found {}",
                                        field_names(*field.message_type()), describe(node)));
                return;
            }
            pb::Message* child = repeated ? reflection.AddMessage(&message, &field)
                                          : reflection.MutableMessage(&message, &field);
            merge_table(*child, *table, path, context);
            return;
        }
    }
}

// Sets `field` from `node`: a repeated field takes an array (and is replaced by it).
void set_field(pb::Message& message, const pb::FieldDescriptor& field, const toml::node& node,
               const std::string& path, Context& context) {
    if (field.is_map()) {
        context.add(node.source(), path, "map fields are not supported in configurations");
        return;
    }
    if (!field.is_repeated()) {
        set_value(message, field, node, path, context);
        return;
    }
    const auto* array = node.as_array();
    if (array == nullptr) {
        context.add(
            node.source(), path,
            fmt::format("expected an array of {}, found {}", wanted(field), describe(node)));
        return;
    }
    message.GetReflection()->ClearField(&message, &field);
    for (std::size_t i = 0; i < array->size(); ++i) {
        set_value(message, field, *array->get(i), fmt::format("{}[{}]", path, i), context);
    }
}

void merge_table(pb::Message& message, const toml::table& table, const std::string& prefix,
                 Context& context) {
    const pb::Descriptor& type = *message.GetDescriptor();
    for (const auto& entry : table) {
        const std::string key(entry.first.str());
        const std::string path = join_path(prefix, key);
        const pb::FieldDescriptor* field = type.FindFieldByName(key);
        if (field == nullptr) {
            context.add(entry.first.source(), path,
                        fmt::format("unknown key (keys here: {})", field_names(type)));
            continue;
        }
        set_field(message, *field, entry.second, path, context);
    }
}

Result<void> finish(const Context& context) {
    if (context.problems.empty()) {
        return {};
    }
    std::string message;
    for (const std::string& problem : context.problems) {
        message += (message.empty() ? "" : "\n") + problem;
    }
    return fail(ErrorCode::kParse, "{}", message);
}

std::int64_t clamp_u64(std::uint64_t value) {
    return static_cast<std::int64_t>(
        std::min<std::uint64_t>(value, std::numeric_limits<std::int64_t>::max()));
}

toml::table message_to_table(const pb::Message& message);

// Hands one value of `field` (element `index` when repeated) to `sink` as a TOML value. A uint64
// beyond int64 cannot be written in TOML and is clamped (no configuration field comes close).
template <class Sink>
void emit_value(Sink&& sink, const pb::Message& message, const pb::FieldDescriptor& field,
                int index) {
    const pb::Reflection& r = *message.GetReflection();
    const bool repeated = field.is_repeated();
    switch (field.cpp_type()) {
        case pb::FieldDescriptor::CPPTYPE_INT32:
            sink(std::int64_t{repeated ? r.GetRepeatedInt32(message, &field, index)
                                       : r.GetInt32(message, &field)});
            return;
        case pb::FieldDescriptor::CPPTYPE_INT64:
            sink(repeated ? r.GetRepeatedInt64(message, &field, index)
                          : r.GetInt64(message, &field));
            return;
        case pb::FieldDescriptor::CPPTYPE_UINT32:
            sink(std::int64_t{repeated ? r.GetRepeatedUInt32(message, &field, index)
                                       : r.GetUInt32(message, &field)});
            return;
        case pb::FieldDescriptor::CPPTYPE_UINT64:
            sink(clamp_u64(repeated ? r.GetRepeatedUInt64(message, &field, index)
                                    : r.GetUInt64(message, &field)));
            return;
        case pb::FieldDescriptor::CPPTYPE_DOUBLE:
            sink(repeated ? r.GetRepeatedDouble(message, &field, index)
                          : r.GetDouble(message, &field));
            return;
        case pb::FieldDescriptor::CPPTYPE_FLOAT:
            sink(double{repeated ? r.GetRepeatedFloat(message, &field, index)
                                 : r.GetFloat(message, &field)});
            return;
        case pb::FieldDescriptor::CPPTYPE_BOOL:
            sink(repeated ? r.GetRepeatedBool(message, &field, index) : r.GetBool(message, &field));
            return;
        case pb::FieldDescriptor::CPPTYPE_STRING:
            sink(repeated ? r.GetRepeatedString(message, &field, index)
                          : r.GetString(message, &field));
            return;
        case pb::FieldDescriptor::CPPTYPE_ENUM:
            sink(short_enum_name(repeated ? *r.GetRepeatedEnum(message, &field, index)
                                          : *r.GetEnum(message, &field)));
            return;
        case pb::FieldDescriptor::CPPTYPE_MESSAGE:
            sink(message_to_table(repeated ? r.GetRepeatedMessage(message, &field, index)
                                           : r.GetMessage(message, &field)));
            return;
    }
}

toml::table message_to_table(const pb::Message& message) {
    toml::table table;
    const pb::Descriptor& type = *message.GetDescriptor();
    const pb::Reflection& reflection = *message.GetReflection();
    for (int i = 0; i < type.field_count(); ++i) {
        const pb::FieldDescriptor& field = *type.field(i);
        if (field.is_map()) {
            continue;  // not readable by merge_toml() either
        }
        if (field.is_repeated()) {
            toml::array values;
            for (int j = 0; j < reflection.FieldSize(message, &field); ++j) {
                emit_value(
                    [&values](auto&& value) {
                        values.push_back(std::forward<decltype(value)>(value));
                    },
                    message, field, j);
            }
            table.insert_or_assign(field.name(), std::move(values));
        } else {
            emit_value(
                [&table, &field](auto&& value) {
                    table.insert_or_assign(field.name(), std::forward<decltype(value)>(value));
                },
                message, field, 0);
        }
    }
    return table;
}

}  // namespace

Result<void> merge_toml(pb::Message& message, std::string_view text, std::string_view source) {
    toml::table table;
    try {
        table = toml::parse(text, source);
    } catch (const toml::parse_error& error) {
        return fail(ErrorCode::kParse, "{}:{}: {}", source, error.source().begin.line,
                    error.description());
    }
    Context context{std::string(source), true, {}};
    merge_table(message, table, "", context);
    return finish(context);
}

Result<void> merge_toml_file(pb::Message& message, const std::filesystem::path& path) {
    std::ifstream file(path, std::ios::binary);
    if (!file) {
        return fail(ErrorCode::kNotFound, "{}: cannot open the configuration file", path.string());
    }
    std::ostringstream text;
    text << file.rdbuf();
    if (file.bad()) {
        return fail(ErrorCode::kIo, "{}: cannot read the configuration file", path.string());
    }
    return merge_toml(message, text.str(), path.string());
}

Result<void> apply_override(pb::Message& message, std::string_view assignment) {
    const auto equals = assignment.find('=');
    if (equals == std::string_view::npos || equals == 0) {
        return fail(ErrorCode::kInvalidArgument, "--set {}: expected key.path=value", assignment);
    }
    const std::string key_path(assignment.substr(0, equals));
    const std::string value(assignment.substr(equals + 1));
    Context context{fmt::format("--set {}", assignment), false, {}};

    // Walk to the message that holds the last key.
    pb::Message* holder = &message;
    std::string path;
    std::size_t start = 0;
    const pb::FieldDescriptor* field = nullptr;
    while (true) {
        const auto dot = key_path.find('.', start);
        const std::string key =
            key_path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
        path = join_path(path, key);
        field = holder->GetDescriptor()->FindFieldByName(key);
        if (field == nullptr) {
            context.add(
                {}, path,
                fmt::format("unknown key (keys here: {})", field_names(*holder->GetDescriptor())));
            return finish(context);
        }
        if (dot == std::string::npos) {
            break;
        }
        if (field->cpp_type() != pb::FieldDescriptor::CPPTYPE_MESSAGE || field->is_repeated()) {
            context.add({}, path, "is not a table, so it has no keys below it");
            return finish(context);
        }
        holder = holder->GetReflection()->MutableMessage(holder, field);
        start = dot + 1;
    }
    if (field->cpp_type() == pb::FieldDescriptor::CPPTYPE_MESSAGE && !field->is_repeated()) {
        context.add({}, path,
                    fmt::format("is a table: set one of its keys ({}.<key>=value; keys: {})", path,
                                field_names(*field->message_type())));
        return finish(context);
    }

    // A bare word is a string for string and enum fields; anything else is read as TOML.
    const bool textual = field->cpp_type() == pb::FieldDescriptor::CPPTYPE_STRING ||
                         field->cpp_type() == pb::FieldDescriptor::CPPTYPE_ENUM;
    const bool quoted = !value.empty() && (value.front() == '"' || value.front() == '\'');
    if (textual && !field->is_repeated() && !quoted) {
        // TOML text is UTF-8 by the time toml++ hands it over; a bare word is taken as it came.
        if (!is_utf8(value)) {
            context.add({}, path, "the value is not valid UTF-8 text");
            return finish(context);
        }
        set_field(*holder, *field, toml::value<std::string>(value), path, context);
        return finish(context);
    }
    toml::table parsed;
    try {
        parsed = toml::parse("value = " + value);
    } catch (const toml::parse_error& error) {
        context.add(
            {}, path,
            fmt::format("'{}' is not a TOML value ({}); expected {}{}", value, error.description(),
                        field->is_repeated() ? "an array of " : "", wanted(*field)));
        return finish(context);
    }
    set_field(*holder, *field, *parsed.get("value"), path, context);
    return finish(context);
}

std::string_view defaults_source(const pb::Message& message) {
    const auto* defaults = find_built_in_defaults(message.GetDescriptor()->full_name());
    return defaults == nullptr ? std::string_view{} : defaults->source;
}

Result<void> merge_defaults(pb::Message& message) {
    const auto* defaults = find_built_in_defaults(message.GetDescriptor()->full_name());
    if (defaults == nullptr) {
        return {};
    }
    return merge_toml(message, defaults->text, defaults->source);
}

std::string to_toml(const pb::Message& message) {
    // Basic strings only, so every control character is escaped (found by fuzz_config_toml):
    // toml++ writes a string holding a newline as a literal '...' (where control characters are
    // not allowed) or as a multi-line """...""" (where a newline right after the quotes is
    // dropped), and either way it did not read back.
    constexpr auto kFlags =
        toml::toml_formatter::default_flags &
        ~(toml::format_flags::allow_literal_strings | toml::format_flags::allow_multi_line_strings);
    std::ostringstream out;
    out << toml::toml_formatter(message_to_table(message), kFlags) << '\n';
    return out.str();
}

}  // namespace anisoflow::runtime
