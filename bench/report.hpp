// What chatbench prints: statistics over samples, a plain-text table for people, and a small
// JSON writer for machines. Pure functions and plain objects; safe from any thread (each
// object used by one thread at a time).
#pragma once

#include <cstddef>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

namespace chat::bench {

// Summary of a set of samples (milliseconds). Percentiles by nearest rank; median is the mean
// of the two middle samples when the count is even. All zero when there are no samples.
struct Summary {
  std::size_t count = 0;
  double min = 0, median = 0, p99 = 0, max = 0;
};
Summary summarize(std::vector<double> samples);
// The nearest-rank percentile `p` (0..100) of `sorted` (ascending, non-empty).
double percentile(const std::vector<double>& sorted, double p);

// "0.42", "12.3", "25104": milliseconds with as many decimals as make sense for a person.
std::string format_ms(double ms);
// "98,765": thousands separated.
std::string format_count(double value);

// A table of text cells with aligned columns; numeric columns are right-aligned.
class Table {
 public:
  struct Column {
    std::string title;
    bool numeric = false;
  };
  explicit Table(std::vector<Column> columns) : columns_(std::move(columns)) {}
  void add_row(std::vector<std::string> cells);
  void print(std::ostream& out) const;

 private:
  std::vector<Column> columns_;
  std::vector<std::vector<std::string>> rows_;
};

// A minimal JSON writer: objects, arrays, strings, numbers, booleans, with commas and escapes
// handled. The caller keeps begin/end balanced.
class Json {
 public:
  Json& begin_object(std::string_view key = {});
  Json& end_object();
  Json& begin_array(std::string_view key = {});
  Json& end_array();
  Json& field(std::string_view key, std::string_view value);
  Json& field(std::string_view key, const char* value) { return field(key, std::string_view(value)); }
  Json& field(std::string_view key, double value);
  Json& field(std::string_view key, long long value);
  Json& field(std::string_view key, int value) { return field(key, static_cast<long long>(value)); }
  Json& field(std::string_view key, std::size_t value) { return field(key, static_cast<long long>(value)); }
  Json& field(std::string_view key, bool value);
  Json& field(std::string_view key, const std::vector<double>& values);
  Json& field(std::string_view key, const std::vector<std::string>& values);
  Json& summary(std::string_view key, const Summary& s);
  const std::string& text() const { return text_; }

 private:
  void key(std::string_view k);
  std::string text_;
  bool need_comma_ = false;
};

std::string json_escape(std::string_view text);

}  // namespace chat::bench
