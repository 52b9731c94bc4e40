// History: the room's events in their one global order, each formatted once (protocol and text
// mode) and shared by every member, with a sequence number. Each member's place in it is a
// HistoryCursor; a writer thread sends a member the entries between its cursor and the head.
// This is the LMAX-Disruptor / Kafka shape: one append per event, whatever the number of
// members, and every reader keeps its own position.
//
// Layout: entries live in chunks of 256, linked oldest to newest. An entry is written once,
// before the head that covers it is published (a release store); a reader that has loaded the
// head (an acquire load) reads every entry below it without a lock, and the entries never change
// afterwards. A cursor holds a shared_ptr to its chunk, so a chunk lives while anyone still needs
// it, however the history trims.
//
// Bounded: the history keeps the most recent `byte_limit` bytes (rounded up to whole chunks) and
// lets go of older chunks. That is what a newcomer could be given to catch up; members never
// lose anything to it, because a cursor keeps its own chunk and the newer ones alive. What bounds
// that is the too-slow rule: a member more than --send-queue bytes behind is dropped.
//
// Threads: append() and start() with the room's lock held (one appender at a time); head(),
// bytes_at_head() and HistoryCursor from any thread.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <string_view>

namespace chat {

// The three ways an entry is written: the protocol line ("MSG alice hi"), the text-mode line
// ("[12:00:01] <alice> hi") and the protocol line with its id tag ("@42/1796... MSG alice hi",
// for clients that joined with ids: docs/protocol.md). Each client reads one of them.
enum class StreamMode { protocol, text, tagged };
inline constexpr std::size_t stream_modes = 3;
constexpr std::size_t index_of(StreamMode mode) { return static_cast<std::size_t>(mode); }

struct HistoryEntry {
  // The entry's line in each mode, LF included (in its chunk's storage); empty: not shown in
  // that mode (a private message's place in the order has no line for anyone).
  std::array<std::string_view, stream_modes> line;
  // Bytes of lines in each mode up to and including this entry.
  std::array<std::uint64_t, stream_modes> end{};
  std::string_view in(StreamMode mode) const { return line[index_of(mode)]; }
  std::uint64_t end_in(StreamMode mode) const { return end[index_of(mode)]; }
};

// An entry's lines, one per mode (index_of), without ownership.
using EntryLines = std::array<std::string_view, stream_modes>;

// Up to 256 entries, and their lines packed back to back in one buffer per mode: consecutive
// entries are consecutive bytes, so a writer sends a run of them with a single iovec.
class HistoryChunk {
 public:
  static constexpr std::size_t capacity = 256;
  static constexpr std::size_t bytes_per_mode = 32 * 1024;  // lines beyond this get their own buffer

  explicit HistoryChunk(std::uint64_t first_seq);
  // Unlinks the chain behind it iteratively: a long chain must not recurse one frame per chunk.
  ~HistoryChunk();
  HistoryChunk(const HistoryChunk&) = delete;
  HistoryChunk& operator=(const HistoryChunk&) = delete;

  // Room lock held, before publication: can the next entry (these lines) go in here?
  bool fits(const EntryLines& lines) const;
  // Room lock held, before publication: copies the lines in and fills entries[seq - first_seq].
  void put(std::uint64_t seq, const EntryLines& lines, const std::array<std::uint64_t, stream_modes>& ends);

  // Room lock held: no more entries go in here; `next` (already set) holds the next one.
  void close(std::uint64_t end) { end_seq.store(end, std::memory_order_release); }

  const std::uint64_t first_seq;
  std::array<HistoryEntry, capacity> entries;  // written once each, before publication
  std::shared_ptr<HistoryChunk> next;           // set before end_seq, so before any of its entries is published
  // The first sequence number not in this chunk, once it is closed (UINT64_MAX before). A reader
  // that finds its seq at or past it moves to `next`; until then `next` may be being written.
  std::atomic<std::uint64_t> end_seq{UINT64_MAX};

 private:
  std::string_view store(std::unique_ptr<char[]>& buffer, std::size_t& used, std::string_view line);

  std::size_t count_ = 0;  // entries put (room lock)
  std::array<std::unique_ptr<char[]>, stream_modes> bytes_;  // one buffer per mode
  std::array<std::size_t, stream_modes> used_{};
  std::deque<std::string> big_;  // lines longer than bytes_per_mode (a deque: they never move)
};

// A position in the history: the next entry to send. Copyable. Threads: one thread at a time
// (a member's writer).
class HistoryCursor {
 public:
  HistoryCursor() = default;
  HistoryCursor(std::shared_ptr<const HistoryChunk> chunk, std::uint64_t seq) : chunk_(std::move(chunk)), seq_(seq) {}
  std::uint64_t seq() const { return seq_; }
  bool valid() const { return chunk_ != nullptr; }
  // The entry at seq(). Only when seq() < the head the caller loaded.
  const HistoryEntry& entry();
  // Moves to the next entry (seq() + 1), or `count` entries on. Only after entry() was valid,
  // and not past the entries it covers (a run's, below the head the caller loaded).
  void advance(std::uint64_t count = 1) { seq_ += count; }

  // The entries from seq() that lie back to back in one buffer of its chunk, as one view: at
  // least one entry, none at or past `until` (at most the head the caller loaded), and no more
  // once `want` bytes are reached. Found with a binary search over the chunk's byte offsets, not
  // by visiting each entry: a writer sends a member hundreds of lines as one piece for the cost
  // of one. (Only when a line stored on its own, over 32 KiB, is in range are the entries walked
  // to find where the run ends.) Only when seq() < until.
  struct Run {
    std::string_view bytes;     // the lines of `entries` entries in `mode`, back to back
    std::uint64_t entries = 0;  // how many (entries with an empty text line count too)
  };
  Run run(std::uint64_t until, StreamMode mode, std::size_t want);
  // The number of whole entries from seq() in the first `bytes` bytes of its stream in `mode`,
  // and their bytes, looking at most `limit` entries ahead (a run returned by run()): how far a
  // partial write of a run got. Does not move the cursor.
  Run whole_entries(StreamMode mode, std::size_t bytes, std::uint64_t limit);

 private:
  std::shared_ptr<const HistoryChunk> chunk_;
  std::uint64_t seq_ = 0;
};

class History {
 public:
  explicit History(std::size_t byte_limit);

  // Room lock held. Appends an entry (lines with their LF, by mode; an empty line: not shown in
  // that mode), publishes it, and returns its sequence number.
  std::uint64_t append(const EntryLines& lines);
  std::uint64_t append(std::string_view protocol, std::string_view text, std::string_view tagged = {}) {
    return append(EntryLines{protocol, text, tagged});
  }
  // Room lock held. A cursor at the head: the first entry it reads is the next one appended.
  HistoryCursor start() const;

  // Any thread. Every entry below head() may be read.
  std::uint64_t head() const { return head_.load(std::memory_order_acquire); }
  // Any thread. Bytes of all entries below the head, in one mode (a member's backlog is this
  // minus what it has been sent).
  std::uint64_t bytes_at_head(StreamMode mode) const { return bytes_[index_of(mode)].load(std::memory_order_acquire); }
  // Room lock held. The chunks kept and the bytes in them (for STATS and the tests).
  std::size_t chunks() const { return chunks_.size(); }
  std::size_t byte_limit() const { return byte_limit_; }

 private:
  const std::size_t byte_limit_;
  std::deque<std::shared_ptr<HistoryChunk>> chunks_;  // room lock: oldest first, never empty
  std::atomic<std::uint64_t> head_{0};
  std::array<std::atomic<std::uint64_t>, stream_modes> bytes_{};  // bytes of all entries below the head, by mode
};

}  // namespace chat
