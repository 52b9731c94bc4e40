#include "bench/report.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iomanip>
#include <sstream>

namespace chat::bench {

double percentile(const std::vector<double>& sorted, double p) {
  const auto n = sorted.size();
  auto rank = static_cast<std::size_t>(std::ceil(p / 100.0 * static_cast<double>(n)));
  rank = std::clamp<std::size_t>(rank, 1, n);
  return sorted[rank - 1];
}

Summary summarize(std::vector<double> samples) {
  Summary s;
  if (samples.empty()) return s;
  std::sort(samples.begin(), samples.end());
  const auto n = samples.size();
  s.count = n;
  s.min = samples.front();
  s.max = samples.back();
  s.median = n % 2 == 1 ? samples[n / 2] : (samples[n / 2 - 1] + samples[n / 2]) / 2;
  s.p99 = percentile(samples, 99);
  return s;
}

std::string format_ms(double ms) {
  char buffer[64];
  if (ms < 10) {
    std::snprintf(buffer, sizeof buffer, "%.2f", ms);
  } else if (ms < 1000) {
    std::snprintf(buffer, sizeof buffer, "%.1f", ms);
  } else {
    std::snprintf(buffer, sizeof buffer, "%.0f", ms);
  }
  return buffer;
}

std::string format_count(double value) {
  const auto whole = static_cast<long long>(std::llround(value));
  std::string digits = std::to_string(whole < 0 ? -whole : whole);
  std::string out;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return whole < 0 ? "-" + out : out;
}

// ---- Table -----------------------------------------------------------------------------------

void Table::add_row(std::vector<std::string> cells) {
  cells.resize(columns_.size());
  rows_.push_back(std::move(cells));
}

void Table::print(std::ostream& out) const {
  std::vector<std::size_t> width(columns_.size());
  for (std::size_t c = 0; c < columns_.size(); ++c) {
    width[c] = columns_[c].title.size();
    for (const auto& row : rows_) width[c] = std::max(width[c], row[c].size());
  }
  auto line = [&](const std::vector<std::string>& cells) {
    std::string text;
    for (std::size_t c = 0; c < cells.size(); ++c) {
      const std::size_t pad = width[c] - cells[c].size();
      if (c > 0) text += "  ";
      if (columns_[c].numeric) text.append(pad, ' ');
      text += cells[c];
      if (!columns_[c].numeric && c + 1 < cells.size()) text.append(pad, ' ');
    }
    while (!text.empty() && text.back() == ' ') text.pop_back();
    out << text << '\n';
  };
  std::vector<std::string> titles;
  std::vector<std::string> rules;
  for (std::size_t c = 0; c < columns_.size(); ++c) {
    titles.push_back(columns_[c].title);
    rules.emplace_back(width[c], '-');
  }
  line(titles);
  line(rules);
  for (const auto& row : rows_) line(row);
}

// ---- Json ------------------------------------------------------------------------------------

std::string json_escape(std::string_view text) {
  std::string out;
  for (const char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          char buffer[8];
          std::snprintf(buffer, sizeof buffer, "\\u%04x", c);
          out += buffer;
        } else {
          out += ch;
        }
    }
  }
  return out;
}

void Json::key(std::string_view k) {
  if (need_comma_) text_ += ',';
  if (!k.empty()) text_ += '"' + json_escape(k) + "\":";
  need_comma_ = true;
}

Json& Json::begin_object(std::string_view k) {
  key(k);
  text_ += '{';
  need_comma_ = false;
  return *this;
}

Json& Json::end_object() {
  text_ += '}';
  need_comma_ = true;
  return *this;
}

Json& Json::begin_array(std::string_view k) {
  key(k);
  text_ += '[';
  need_comma_ = false;
  return *this;
}

Json& Json::end_array() {
  text_ += ']';
  need_comma_ = true;
  return *this;
}

Json& Json::field(std::string_view k, std::string_view value) {
  key(k);
  text_ += '"' + json_escape(value) + '"';
  return *this;
}

Json& Json::field(std::string_view k, double value) {
  key(k);
  if (!std::isfinite(value)) {
    text_ += "null";
  } else {
    std::ostringstream out;
    out << std::setprecision(6) << value;
    text_ += out.str();
  }
  return *this;
}

Json& Json::field(std::string_view k, long long value) {
  key(k);
  text_ += std::to_string(value);
  return *this;
}

Json& Json::field(std::string_view k, bool value) {
  key(k);
  text_ += value ? "true" : "false";
  return *this;
}

Json& Json::field(std::string_view k, const std::vector<double>& values) {
  begin_array(k);
  for (double v : values) field({}, v);
  return end_array();
}

Json& Json::field(std::string_view k, const std::vector<std::string>& values) {
  begin_array(k);
  for (const auto& v : values) field({}, std::string_view(v));
  return end_array();
}

Json& Json::summary(std::string_view k, const Summary& s) {
  begin_object(k);
  field("count", s.count);
  field("min_ms", s.min);
  field("median_ms", s.median);
  field("p99_ms", s.p99);
  field("max_ms", s.max);
  return end_object();
}

}  // namespace chat::bench
