#include "common/websocket.hpp"

#include "common/http.hpp"

#include <openssl/evp.h>

#include <algorithm>
#include <cassert>
#include <cstring>
#include <stdexcept>

namespace chat::ws {

std::string_view describe_close(std::uint16_t code) {
  switch (code) {
    case 1000: return "normal closure";
    case 1001: return "going away";
    case 1002: return "protocol error";
    case 1003: return "unsupported data";
    case 1005: return "no status code";
    case 1006: return "connection closed abnormally";
    case 1007: return "invalid data";
    case 1008: return "policy violation";
    case 1009: return "message too big";
    case 1010: return "extension required";
    case 1011: return "internal error";
    case 1012: return "service restart";
    case 1013: return "try again later";
    case 1014: return "bad gateway";
    case 1015: return "TLS handshake failure";
  }
  return "";
}

bool close_code_allowed_on_wire(std::uint16_t code) {
  // 1004 is reserved; 1005, 1006 and 1015 stand for what was not on the wire; 1016-2999 are
  // unassigned in the IANA registry (RFC 6455 7.4.2).
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999);
}

std::size_t frame_header(Opcode op, std::uint64_t payload_size, char* out, const std::array<std::uint8_t, 4>* mask,
                         bool fin) {
  assert(payload_size >> 63 == 0);
  const auto byte = [](unsigned v) { return static_cast<char>(static_cast<unsigned char>(v)); };
  out[0] = byte((fin ? 0x80u : 0u) | static_cast<std::uint8_t>(op));
  const unsigned mask_bit = mask ? 0x80u : 0u;
  std::size_t n = 2;
  if (payload_size < 126) {
    out[1] = byte(mask_bit | static_cast<unsigned>(payload_size));
  } else if (payload_size <= 0xFFFF) {
    out[1] = byte(mask_bit | 126u);
    for (int shift = 8; shift >= 0; shift -= 8) out[n++] = byte(static_cast<unsigned>(payload_size >> shift) & 0xFFu);
  } else {
    out[1] = byte(mask_bit | 127u);
    for (int shift = 56; shift >= 0; shift -= 8) out[n++] = byte(static_cast<unsigned>(payload_size >> shift) & 0xFFu);
  }
  if (mask) {
    std::memcpy(out + n, mask->data(), 4);
    n += 4;
  }
  return n;
}

void apply_mask(char* data, std::size_t size, const std::array<std::uint8_t, 4>& mask, std::size_t offset) {
  // The key laid out twice from `offset`, so that key[i % 8] masks data[i]: 8 bytes per XOR.
  std::array<std::uint8_t, 8> key;
  for (std::size_t k = 0; k < key.size(); ++k) key[k] = mask[(offset + k) % 4];
  std::uint64_t word;
  std::memcpy(&word, key.data(), sizeof word);
  std::size_t i = 0;
  for (; i + 8 <= size; i += 8) {
    std::uint64_t v;
    std::memcpy(&v, data + i, sizeof v);
    v ^= word;
    std::memcpy(data + i, &v, sizeof v);
  }
  for (; i < size; ++i) data[i] = static_cast<char>(static_cast<std::uint8_t>(data[i]) ^ key[i % 8]);
}

std::string make_frame(Opcode op, std::string_view payload, const std::array<std::uint8_t, 4>* mask, bool fin) {
  char header[max_header];
  const std::size_t n = frame_header(op, payload.size(), header, mask, fin);
  std::string out;
  out.reserve(n + payload.size());
  out.append(header, n);
  out.append(payload);
  if (mask) apply_mask(out.data() + n, payload.size(), *mask);
  return out;
}

std::string close_frame(std::uint16_t code, std::string_view reason, const std::array<std::uint8_t, 4>* mask) {
  if (code == close_code::no_status) return make_frame(Opcode::close, {}, mask);
  if (reason.size() > max_control_payload - 2) {
    std::size_t cut = max_control_payload - 2;
    // Back up to the start of the sequence the cut falls in (its continuation bytes are 10xxxxxx).
    while (cut > 0 && (static_cast<unsigned char>(reason[cut]) & 0xC0u) == 0x80u) --cut;
    reason = reason.substr(0, cut);
  }
  std::string payload;
  payload += static_cast<char>(code >> 8);
  payload += static_cast<char>(code & 0xFFu);
  payload += reason;
  return make_frame(Opcode::close, payload, mask);
}

std::string accept_key(std::string_view client_key) {
  static constexpr std::string_view guid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
  std::string input;
  input.reserve(client_key.size() + guid.size());
  input.append(client_key).append(guid);
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int digest_size = 0;
  if (EVP_Digest(input.data(), input.size(), digest, &digest_size, EVP_sha1(), nullptr) != 1) {
    throw std::runtime_error("libcrypto: SHA-1 failed");
  }
  unsigned char encoded[4 * ((EVP_MAX_MD_SIZE + 2) / 3) + 1];  // EVP_EncodeBlock adds a NUL
  const int n = EVP_EncodeBlock(encoded, digest, static_cast<int>(digest_size));
  return std::string(reinterpret_cast<const char*>(encoded), static_cast<std::size_t>(n));
}

bool valid_client_key(std::string_view key) {
  const auto base64 = [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/';
  };
  return key.size() == 24 && key.substr(22) == "==" && std::all_of(key.begin(), key.begin() + 22, base64);
}

std::string client_handshake(std::string_view host_port, std::string_view path, std::string_view key,
                             std::string_view origin) {
  std::string out;
  out.append("GET ").append(path).append(" HTTP/1.1\r\n");
  out.append("Host: ").append(host_port).append("\r\n");
  out.append("Upgrade: websocket\r\nConnection: Upgrade\r\n");
  out.append("Sec-WebSocket-Key: ").append(key).append("\r\n");
  out.append("Sec-WebSocket-Version: 13\r\n");
  if (!origin.empty()) out.append("Origin: ").append(origin).append("\r\n");
  out.append("\r\n");
  return out;
}

bool handshake_accepted(std::string_view response_head, std::string_view key) {
  const auto r = http::parse_response_head(response_head);
  return r && r->status == 101 && r->header_has_token("Upgrade", "websocket") &&
         r->header_has_token("Connection", "Upgrade") && r->header("Sec-WebSocket-Accept") == accept_key(key) &&
         !r->header("Sec-WebSocket-Extensions") && !r->header("Sec-WebSocket-Protocol");
}

// ---- Utf8Validator ----------------------------------------------------------------------

bool Utf8Validator::feed(std::string_view bytes) {
  if (failed_) return false;
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  const auto* const end = p + bytes.size();
  while (p != end) {
    if (need_ > 0) {
      if (*p < lo_ || *p > hi_) return !(failed_ = true);
      ++p;
      --need_;
      lo_ = 0x80;
      hi_ = 0xBF;
      continue;
    }
    // Between code points: skip ASCII 8 bytes at a time, as chat lines mostly are.
    while (end - p >= 8) {
      std::uint64_t w;
      std::memcpy(&w, p, sizeof w);
      if (w & 0x8080808080808080u) break;
      p += 8;
    }
    if (p == end) break;
    const unsigned char b = *p++;
    if (b < 0x80) continue;
    if (b >= 0xC2 && b <= 0xDF) {
      need_ = 1;
    } else if (b >= 0xE0 && b <= 0xEF) {
      need_ = 2;
      if (b == 0xE0) lo_ = 0xA0;  // E0 80..9F would be overlong
      if (b == 0xED) hi_ = 0x9F;  // ED A0..BF would be surrogates
    } else if (b >= 0xF0 && b <= 0xF4) {
      need_ = 3;
      if (b == 0xF0) lo_ = 0x90;  // F0 80..8F would be overlong
      if (b == 0xF4) hi_ = 0x8F;  // F4 90..BF would be above U+10FFFF
    } else {
      return !(failed_ = true);  // a continuation byte first, C0, C1 (overlong), F5..FF
    }
  }
  return true;
}

// ---- MessageReader ----------------------------------------------------------------------

MessageReader::MessageReader(Options options) : options_(options) {}

std::size_t MessageReader::parse(std::string_view bytes) {
  if (ready_) finish_event();  // the last callback threw; the contract says stop, but stay sane
  std::size_t used = 0;
  while (!ready_ && !failed_ && !closed_) {
    const std::size_t available = bytes.size() - used;
    if (stage_ == Stage::payload) {
      const auto take = static_cast<std::size_t>(std::min<std::uint64_t>(remaining_, available));
      if (take > 0) {
        take_payload(bytes.substr(used, take));
        used += take;
        if (ready_) break;  // invalid UTF-8
      }
      if (remaining_ > 0) break;
      end_frame();
      continue;
    }
    if (available == 0) break;
    const std::size_t take = std::min(header_need_ - header_size_, available);
    std::memcpy(header_.data() + header_size_, bytes.data() + used, take);
    header_size_ += take;
    used += take;
    if (header_size_ == header_need_) header_complete();
  }
  return used;
}

void MessageReader::header_complete() {
  switch (stage_) {
    case Stage::start: {
      if (!check_start()) return;
      const unsigned len7 = header_[1] & 0x7Fu;
      if (len7 < 126) {
        length_ = len7;
        return length_known();
      }
      stage_ = Stage::length;
      header_need_ += len7 == 126 ? 2 : 8;
      return;
    }
    case Stage::length:
      length_ = 0;
      for (std::size_t i = 2; i < header_size_; ++i) length_ = (length_ << 8) | header_[i];
      return length_known();
    case Stage::mask: {
      std::memcpy(mask_.data(), header_.data() + header_size_ - 4, 4);
      return begin_payload();
    }
    case Stage::payload: break;
  }
}

bool MessageReader::refuse(std::uint16_t code, std::string detail) {
  fail(code, std::move(detail));
  return false;
}

bool MessageReader::check_start() {
  const std::uint8_t b0 = header_[0];
  const std::uint8_t b1 = header_[1];
  fin_ = (b0 & 0x80u) != 0;
  masked_ = (b1 & 0x80u) != 0;
  const unsigned op = b0 & 0x0Fu;
  // No extension is ever negotiated, so no reserved bit may be set.
  if (b0 & 0x70u) return refuse(close_code::protocol_error, "reserved bits set");
  if (op > 10 || (op > 2 && op < 8)) {
    return refuse(close_code::protocol_error, "unknown opcode " + std::to_string(op));
  }
  opcode_ = static_cast<Opcode>(op);
  if (options_.role == Role::server && !masked_) return refuse(close_code::protocol_error, "frame not masked");
  if (options_.role == Role::client && masked_) {
    return refuse(close_code::protocol_error, "masked frame from the server");
  }
  if (is_control()) {
    if (!fin_) return refuse(close_code::protocol_error, "fragmented control frame");
    if ((b1 & 0x7Fu) > max_control_payload) {
      return refuse(close_code::protocol_error, "control frame over 125 bytes");
    }
    return true;
  }
  if (opcode_ == Opcode::continuation && !in_message_) {
    return refuse(close_code::protocol_error, "continuation without a message");
  }
  if (opcode_ != Opcode::continuation && in_message_) {
    return refuse(close_code::protocol_error, "new message inside a fragmented one");
  }
  if (opcode_ == Opcode::binary && options_.text_only) {
    return refuse(close_code::unsupported_data, "binary message (text only here)");
  }
  return true;
}

void MessageReader::length_known() {
  if (length_ >> 63) return fail(close_code::protocol_error, "64-bit length with the top bit set");
  // Control frames were bounded in check_start; a data frame must fit the message.
  if (!is_control() && length_ > options_.max_message - message_.size()) {
    return fail(close_code::too_big, "message over " + std::to_string(options_.max_message) + " bytes");
  }
  if (masked_) {
    stage_ = Stage::mask;
    header_need_ += 4;
    return;
  }
  begin_payload();
}

void MessageReader::begin_payload() {
  stage_ = Stage::payload;
  remaining_ = length_;
  mask_offset_ = 0;
  header_size_ = 0;
  header_need_ = 2;
  if (is_control()) return;
  if (opcode_ != Opcode::continuation) {
    in_message_ = true;
    message_text_ = opcode_ == Opcode::text;
    utf8_.reset();
  }
}

void MessageReader::take_payload(std::string_view chunk) {
  char* data;
  if (is_control()) {
    data = control_.data() + control_size_;
    std::memcpy(data, chunk.data(), chunk.size());
    control_size_ += chunk.size();
  } else if (!masked_ && fin_ && message_.empty() && chunk.size() == length_) {
    // The whole of a one-frame message, unmasked, in the bytes being fed: nothing to unmask or
    // gather, so it is reported where it lies (a client reading a server saves a copy a line).
    direct_ = chunk;
    remaining_ = 0;
    if (message_text_ && options_.check_utf8 && !utf8_.feed(chunk)) {
      fail(close_code::invalid_payload, "invalid UTF-8 in a text message");
    }
    return;
  } else {
    const std::size_t old = message_.size();
    // The buffer grows with the bytes that came, not with the length a header promised, and
    // doubles up to max_message, never past it (length_known() has checked old + chunk).
    if (const std::size_t need = old + chunk.size(); need > message_.capacity()) {
      message_.reserve(std::min(std::max(need, 2 * message_.capacity()), options_.max_message));
    }
    message_.insert(message_.end(), chunk.begin(), chunk.end());
    data = message_.data() + old;
  }
  if (masked_) apply_mask(data, chunk.size(), mask_, mask_offset_);
  mask_offset_ = (mask_offset_ + chunk.size()) % 4;
  remaining_ -= chunk.size();
  if (!is_control() && message_text_ && options_.check_utf8 && !utf8_.feed({data, chunk.size()})) {
    fail(close_code::invalid_payload, "invalid UTF-8 in a text message");
  }
}

void MessageReader::end_frame() {
  stage_ = Stage::start;
  switch (opcode_) {
    case Opcode::ping: return report(Event::Kind::ping, {control_.data(), control_size_});
    case Opcode::pong: return report(Event::Kind::pong, {control_.data(), control_size_});
    case Opcode::close: return end_close_frame();
    default: break;
  }
  if (!fin_) return;
  in_message_ = false;
  if (message_text_ && options_.check_utf8 && !utf8_.complete()) {
    return fail(close_code::invalid_payload, "invalid UTF-8 in a text message");
  }
  const std::string_view whole = direct_.data() != nullptr ? direct_ : std::string_view(message_.data(), message_.size());
  report(message_text_ ? Event::Kind::text : Event::Kind::binary, whole);
}

void MessageReader::end_close_frame() {
  if (control_size_ == 0) return report(Event::Kind::close, {}, close_code::no_status);
  if (control_size_ == 1) return fail(close_code::protocol_error, "close frame of 1 byte");
  const auto code = static_cast<std::uint16_t>((static_cast<unsigned char>(control_[0]) << 8) |
                                               static_cast<unsigned char>(control_[1]));
  if (!close_code_allowed_on_wire(code)) {
    return fail(close_code::protocol_error, "bad close code " + std::to_string(code));
  }
  const std::string_view reason(control_.data() + 2, control_size_ - 2);
  Utf8Validator utf8;
  if (!utf8.feed(reason) || !utf8.complete()) {
    return fail(close_code::invalid_payload, "invalid UTF-8 in a close reason");
  }
  report(Event::Kind::close, reason, code);
}

void MessageReader::report(Event::Kind kind, std::string_view payload, std::uint16_t code) {
  event_.kind = kind;
  event_.payload = payload;
  event_.code = code;
  ready_ = true;
  if (kind == Event::Kind::close) closed_ = true;
}

void MessageReader::fail(std::uint16_t code, std::string detail) {
  failed_ = true;
  event_.detail = std::move(detail);
  report(Event::Kind::fail, {}, code);
}

void MessageReader::finish_event() {
  ready_ = false;
  direct_ = {};
  switch (event_.kind) {
    case Event::Kind::text:
    case Event::Kind::binary: message_.clear(); break;
    case Event::Kind::ping:
    case Event::Kind::pong: control_size_ = 0; break;
    case Event::Kind::close:
    case Event::Kind::fail:
      // The stream is over: give the memory back now rather than when the session ends.
      std::vector<char>().swap(message_);
      control_size_ = 0;
      header_size_ = 0;
      break;
  }
  event_.payload = {};
  event_.code = 0;
  event_.detail.clear();
}

}  // namespace chat::ws
