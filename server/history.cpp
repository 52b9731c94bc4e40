#include "server/history.hpp"

#include <algorithm>
#include <cstring>

namespace chat {
namespace {

std::uint64_t start_of(const HistoryChunk& chunk, StreamMode mode) {
  const auto& first = chunk.entries[0];
  return mode == StreamMode::text ? first.text_end - first.text.size() : first.protocol_end - first.protocol.size();
}

}  // namespace

HistoryChunk::HistoryChunk(std::uint64_t first_seq)
    : first_seq(first_seq),
      protocol_bytes_(std::make_unique_for_overwrite<char[]>(bytes_per_mode)),
      text_bytes_(std::make_unique_for_overwrite<char[]>(bytes_per_mode)) {}

bool HistoryChunk::fits(std::size_t protocol_size, std::size_t text_size) const {
  if (count_ == capacity) return false;
  // A line too long for any chunk's buffer goes into a buffer of its own wherever it is.
  const bool protocol_fits = protocol_size > bytes_per_mode || protocol_used_ + protocol_size <= bytes_per_mode;
  const bool text_fits = text_size > bytes_per_mode || text_used_ + text_size <= bytes_per_mode;
  return protocol_fits && text_fits;
}

std::string_view HistoryChunk::store(std::unique_ptr<char[]>& buffer, std::size_t& used, std::string_view line) {
  if (line.size() > bytes_per_mode) return big_.emplace_back(line);
  char* at = buffer.get() + used;
  std::memcpy(at, line.data(), line.size());
  used += line.size();
  return {at, line.size()};
}

void HistoryChunk::put(std::uint64_t seq, std::string_view protocol, std::string_view text, std::uint64_t protocol_end,
                       std::uint64_t text_end) {
  auto& entry = entries[seq - first_seq];
  entry.protocol = store(protocol_bytes_, protocol_used_, protocol);
  entry.text = store(text_bytes_, text_used_, text);
  entry.protocol_end = protocol_end;
  entry.text_end = text_end;
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

std::string_view line_of(const HistoryEntry& e, StreamMode mode) { return mode == StreamMode::text ? e.text : e.protocol; }
std::uint64_t end_of(const HistoryEntry& e, StreamMode mode) {
  return mode == StreamMode::text ? e.text_end : e.protocol_end;
}

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

std::uint64_t History::append(std::string_view protocol, std::string_view text) {
  const std::uint64_t seq = head_.load(std::memory_order_relaxed);
  auto* tail = chunks_.back().get();
  if (!tail->fits(protocol.size(), text.size())) {
    auto fresh = std::make_shared<HistoryChunk>(seq);
    tail->next = fresh;  // before `seq` is published: readers that see it find the chunk
    tail->close(seq);
    chunks_.push_back(std::move(fresh));
    tail = chunks_.back().get();
  }
  const auto protocol_end = protocol_bytes_.load(std::memory_order_relaxed) + protocol.size();
  const auto text_end = text_bytes_.load(std::memory_order_relaxed) + text.size();
  tail->put(seq, protocol, text, protocol_end, text_end);
  protocol_bytes_.store(protocol_end, std::memory_order_release);
  text_bytes_.store(text_end, std::memory_order_release);
  head_.store(seq + 1, std::memory_order_release);  // publishes the entry (and tail->next)

  // Let go of the oldest chunk while the rest still holds byte_limit_ (in the mode with more
  // bytes: text lines that a person does not see are empty, so one mode can hold far fewer).
  // Nobody reading loses anything: a member's cursor holds its own chunk and those after it,
  // until it catches up or is dropped; what the history keeps is the recent past for newcomers.
  while (chunks_.size() > 1) {
    const auto& second = *chunks_[1];
    const auto kept_protocol = protocol_end - start_of(second, StreamMode::protocol);
    const auto kept_text = text_end - start_of(second, StreamMode::text);
    if (std::max(kept_protocol, kept_text) < byte_limit_) break;
    chunks_.pop_front();
  }
  return seq;
}

}  // namespace chat
