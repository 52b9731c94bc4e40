#include "server/history.hpp"

#include <algorithm>
#include <cstring>

namespace chat {
namespace {

std::uint64_t start_of(const HistoryChunk& chunk, std::size_t mode) {
  const auto& first = chunk.entries[0];
  return first.end[mode] - first.line[mode].size();
}

}  // namespace

HistoryChunk::HistoryChunk(std::uint64_t first_seq) : first_seq(first_seq) {
  // Pages of a buffer no mode uses (no client reads tagged lines, say) are never touched, so
  // the kernel never gives them memory.
  for (auto& buffer : bytes_) buffer = std::make_unique_for_overwrite<char[]>(bytes_per_mode);
}

bool HistoryChunk::fits(const EntryLines& lines) const {
  if (count_ == capacity) return false;
  // A line too long for any chunk's buffer goes into a buffer of its own wherever it is.
  for (std::size_t m = 0; m < stream_modes; ++m) {
    if (lines[m].size() <= bytes_per_mode && used_[m] + lines[m].size() > bytes_per_mode) return false;
  }
  return true;
}

std::string_view HistoryChunk::store(std::unique_ptr<char[]>& buffer, std::size_t& used, std::string_view line) {
  if (line.empty()) return {};  // a private message's entry: nothing to copy (and no buffer yet)
  if (line.size() > bytes_per_mode) return big_.emplace_back(line);
  char* at = buffer.get() + used;
  std::memcpy(at, line.data(), line.size());
  used += line.size();
  return {at, line.size()};
}

void HistoryChunk::put(std::uint64_t seq, const EntryLines& lines, const std::array<std::uint64_t, stream_modes>& ends) {
  auto& entry = entries[seq - first_seq];
  for (std::size_t m = 0; m < stream_modes; ++m) entry.line[m] = store(bytes_[m], used_[m], lines[m]);
  entry.end = ends;
  ++count_;
}

HistoryChunk::~HistoryChunk() {
  // Destroying a chunk drops its `next`, which may destroy that one, and so on: with a member
  // that pinned an old chunk, the chain behind it can be thousands of chunks long. Unlink it
  // in a loop instead of letting each destructor recurse into the next one.
  std::shared_ptr<HistoryChunk> chain = std::move(next);
  while (chain && chain.use_count() == 1) {
    std::shared_ptr<HistoryChunk> rest = std::move(chain->next);
    chain = std::move(rest);  // destroys the chunk, whose own `next` is already empty
  }
}

const HistoryEntry& HistoryCursor::entry() {
  while (seq_ >= chunk_->end_seq.load(std::memory_order_acquire)) chunk_ = chunk_->next;
  return chunk_->entries[seq_ - chunk_->first_seq];
}

namespace {

std::string_view line_of(const HistoryEntry& e, StreamMode mode) { return e.in(mode); }
std::uint64_t end_of(const HistoryEntry& e, StreamMode mode) { return e.end_in(mode); }

}  // namespace

HistoryCursor::Run HistoryCursor::run(std::uint64_t until, StreamMode mode, std::size_t want) {
  const HistoryEntry& first = entry();  // on the chunk that holds seq_
  const HistoryChunk& chunk = *chunk_;
  const std::size_t from = seq_ - chunk.first_seq;
  // Published entries of this chunk: below `until`, below its end once it is closed.
  const std::uint64_t last = std::min({until, chunk.end_seq.load(std::memory_order_acquire),
                                       chunk.first_seq + HistoryChunk::capacity});
  std::size_t to = static_cast<std::size_t>(last - chunk.first_seq);  // exclusive
  const std::string_view head = line_of(first, mode);
  const std::uint64_t start = end_of(first, mode) - head.size();
  const auto* entries = chunk.entries.data();
  // Stop at the first entry that reaches `want` (included: a run has at least one entry).
  if (end_of(entries[to - 1], mode) - start > want) {
    const auto* reach = std::partition_point(entries + from, entries + to, [&](const HistoryEntry& e) {
      return end_of(e, mode) - start < want;
    });
    to = static_cast<std::size_t>(reach - entries) + 1;
  }
  // Back to back unless a line too long for the chunk's buffer (stored on its own) is among them:
  // then the run ends before it (or is that line alone).
  // (Compared as integers: a pointer past the end of `head`'s buffer may not be formed.)
  const auto address = [](const char* p) { return reinterpret_cast<std::uintptr_t>(p); };
  std::uint64_t bytes = end_of(entries[to - 1], mode) - start;
  const std::string_view tail = line_of(entries[to - 1], mode);
  if (address(tail.data()) + tail.size() != address(head.data()) + bytes) {
    std::size_t k = from + 1;
    while (k < to && address(line_of(entries[k], mode).data()) ==
                         address(head.data()) + (end_of(entries[k - 1], mode) - start)) {
      ++k;
    }
    to = k;
    bytes = end_of(entries[to - 1], mode) - start;
  }
  return Run{std::string_view(head.data(), static_cast<std::size_t>(bytes)), to - from};
}

HistoryCursor::Run HistoryCursor::whole_entries(StreamMode mode, std::size_t bytes, std::uint64_t limit) {
  const HistoryEntry& first = entry();
  const HistoryChunk& chunk = *chunk_;
  const std::size_t from = seq_ - chunk.first_seq;
  const std::size_t to = from + static_cast<std::size_t>(limit);  // within the chunk: it was a run
  const std::uint64_t start = end_of(first, mode) - line_of(first, mode).size();
  const auto* entries = chunk.entries.data();
  const auto* past = std::partition_point(entries + from, entries + to,
                                          [&](const HistoryEntry& e) { return end_of(e, mode) - start <= bytes; });
  const auto count = static_cast<std::size_t>(past - (entries + from));
  const std::uint64_t taken = count == 0 ? 0 : end_of(entries[from + count - 1], mode) - start;
  return Run{std::string_view(line_of(first, mode).data(), static_cast<std::size_t>(taken)), count};
}

History::History(std::size_t byte_limit) : byte_limit_(byte_limit) {
  chunks_.push_back(std::make_shared<HistoryChunk>(0));
}

HistoryCursor History::start() const { return HistoryCursor(chunks_.back(), head_.load(std::memory_order_relaxed)); }

std::uint64_t History::append(const EntryLines& lines) {
  const std::uint64_t seq = head_.load(std::memory_order_relaxed);
  auto* tail = chunks_.back().get();
  if (!tail->fits(lines)) {
    auto fresh = std::make_shared<HistoryChunk>(seq);
    tail->next = fresh;  // before `seq` is published: readers that see it find the chunk
    tail->close(seq);
    chunks_.push_back(std::move(fresh));
    tail = chunks_.back().get();
  }
  std::array<std::uint64_t, stream_modes> ends{};
  for (std::size_t m = 0; m < stream_modes; ++m) ends[m] = bytes_[m].load(std::memory_order_relaxed) + lines[m].size();
  tail->put(seq, lines, ends);
  for (std::size_t m = 0; m < stream_modes; ++m) bytes_[m].store(ends[m], std::memory_order_release);
  head_.store(seq + 1, std::memory_order_release);  // publishes the entry (and tail->next)

  // Let go of the oldest chunk while the rest still holds byte_limit_ (in the mode with more
  // bytes: text lines that a person does not see are empty, so one mode can hold far fewer).
  // Nobody reading loses anything: a member's cursor holds its own chunk and those after it,
  // until it catches up or is dropped; what the history keeps is the recent past for newcomers.
  while (chunks_.size() > 1) {
    const auto& second = *chunks_[1];
    std::uint64_t kept = 0;
    for (std::size_t m = 0; m < stream_modes; ++m) kept = std::max(kept, ends[m] - start_of(second, m));
    if (kept < byte_limit_) break;
    chunks_.pop_front();
  }
  return seq;
}

}  // namespace chat
