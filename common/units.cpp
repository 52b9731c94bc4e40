#include "common/units.hpp"

#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdio>

namespace chat {
namespace {

template <typename T>
std::optional<T> fail(std::string* error, std::string message) {
  if (error) *error = std::move(message);
  return std::nullopt;
}

// Splits "1.5s" into 1.5 and "s". Only plain decimal numbers, no sign, no exponent.
bool split_number(std::string_view text, double& value, std::string_view& unit) {
  std::size_t i = 0;
  bool digits = false, dot = false;
  while (i < text.size()) {
    const char c = text[i];
    if (c >= '0' && c <= '9') {
      digits = true;
    } else if (c == '.' && !dot) {
      dot = true;
    } else {
      break;
    }
    ++i;
  }
  if (!digits) return false;
  const std::string number(text.substr(0, i));
  char* end = nullptr;
  value = std::strtod(number.c_str(), &end);
  if (end != number.c_str() + number.size() || !std::isfinite(value)) return false;
  unit = text.substr(i);
  return true;
}

// The message for a number followed by `unit`, which none of the units in `known` is.
// "10x": the unit is what is wrong; "1 s": a space; "1.2.3s", "1,5s": the number is.
std::string bad_unit(const std::string& quoted, std::string_view unit, const char* known, const char* what) {
  const unsigned char first = static_cast<unsigned char>(unit.front());
  if (std::isspace(first)) return quoted + ": no space between the number and the unit (" + known + ")";
  if (!std::isalpha(first)) return quoted + " is not a " + what + " (" + known + ")";
  return "unknown unit '" + std::string(unit) + "' in " + quoted + " (" + known + ")";
}

constexpr const char* duration_units = "use ms, s, m or h, e.g. 100ms, 1.5s, 2m";
constexpr const char* size_units = "use B, KiB, MiB or GiB, e.g. 4096, 64KiB, 1MiB";

}  // namespace

std::optional<Millis> parse_duration(std::string_view text, std::string* error) {
  double value = 0;
  std::string_view unit;
  const std::string quoted = "'" + std::string(text) + "'";
  if (!split_number(text, value, unit)) {
    return fail<Millis>(error, quoted + " is not a duration (a number and a unit, e.g. 100ms, 1.5s, 2m)");
  }
  double ms_per_unit;
  if (unit == "ms") {
    ms_per_unit = 1;
  } else if (unit == "s") {
    ms_per_unit = 1000;
  } else if (unit == "m" || unit == "min") {
    ms_per_unit = 60'000;
  } else if (unit == "h") {
    ms_per_unit = 3'600'000;
  } else if (unit == "d") {
    ms_per_unit = 86'400'000;  // (a ban's length: BAN alice 1d)
  } else if (unit.empty() && value == 0) {
    ms_per_unit = 0;
  } else if (unit.empty()) {
    return fail<Millis>(error, quoted + " needs a unit (" + duration_units + ")");
  } else {
    return fail<Millis>(error, bad_unit(quoted, unit, duration_units, "duration"));
  }
  const double ms = value * ms_per_unit;
  if (ms > 1e12) return fail<Millis>(error, quoted + " is too long");
  return Millis{static_cast<Millis::rep>(std::llround(ms))};
}

std::optional<std::size_t> parse_size(std::string_view text, std::string* error) {
  double value = 0;
  std::string_view unit;
  const std::string quoted = "'" + std::string(text) + "'";
  if (!split_number(text, value, unit)) {
    return fail<std::size_t>(error, quoted + " is not a size (bytes, or a number and a unit, e.g. 4096, 64KiB, 1MiB)");
  }
  double scale;
  if (unit.empty() || unit == "B") {
    scale = 1;
  } else if (unit == "KiB" || unit == "K" || unit == "k") {
    scale = 1024.0;
  } else if (unit == "MiB" || unit == "M") {
    scale = 1024.0 * 1024;
  } else if (unit == "GiB" || unit == "G") {
    scale = 1024.0 * 1024 * 1024;
  } else {
    return fail<std::size_t>(error, bad_unit(quoted, unit, size_units, "size"));
  }
  const double bytes = value * scale;
  if (bytes > 1e15) return fail<std::size_t>(error, quoted + " is too large");
  if (bytes != std::floor(bytes)) return fail<std::size_t>(error, quoted + " is not a whole number of bytes");
  return static_cast<std::size_t>(bytes);
}

std::string format_duration(std::chrono::nanoseconds d) {
  char buf[48];
  const double ms = std::chrono::duration<double, std::milli>(d).count();
  if (ms < 1000) {
    std::snprintf(buf, sizeof buf, "%.0f ms", ms);
  } else {
    std::snprintf(buf, sizeof buf, "%.1f s", ms / 1000);
  }
  return buf;
}

std::optional<KeepaliveConfig> parse_keepalive(std::string_view text, std::string* error) {
  if (text == "off") return KeepaliveConfig{false, Millis{0}, Millis{0}, 0};
  const std::string quoted = "'" + std::string(text) + "'";
  const auto c1 = text.find(',');
  const auto c2 = c1 == std::string_view::npos ? c1 : text.find(',', c1 + 1);
  if (c2 == std::string_view::npos) {
    return fail<KeepaliveConfig>(error, quoted + ": expected IDLE,INTERVAL,COUNT (e.g. 10s,2s,3) or off");
  }
  std::string sub_error;
  auto idle = parse_duration(text.substr(0, c1), &sub_error);
  if (!idle) return fail<KeepaliveConfig>(error, "keepalive IDLE: " + sub_error);
  auto interval = parse_duration(text.substr(c1 + 1, c2 - c1 - 1), &sub_error);
  if (!interval) return fail<KeepaliveConfig>(error, "keepalive INTERVAL: " + sub_error);
  const auto count_text = text.substr(c2 + 1);
  int count = 0;
  auto [ptr, ec] = std::from_chars(count_text.data(), count_text.data() + count_text.size(), count);
  if (ec != std::errc{} || ptr != count_text.data() + count_text.size() || count < 1 || count > 127) {
    return fail<KeepaliveConfig>(error, quoted + ": COUNT must be a whole number from 1 to 127");
  }
  // The kernel takes whole seconds for both (and at most 32767).
  auto whole_seconds = [](Millis m) { return m.count() % 1000 == 0 && m >= Millis{1000} && m <= Millis{32'767'000}; };
  if (!whole_seconds(*idle) || !whole_seconds(*interval)) {
    return fail<KeepaliveConfig>(error, quoted + ": IDLE and INTERVAL must be whole seconds from 1s to 32767s");
  }
  return KeepaliveConfig{true, *idle, *interval, count};
}

std::string format_keepalive(const KeepaliveConfig& k) {
  if (!k.enabled) return "off";
  return std::to_string(k.idle.count() / 1000) + "s," + std::to_string(k.interval.count() / 1000) + "s," +
         std::to_string(k.count);
}

}  // namespace chat
