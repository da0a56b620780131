#include "runners/serve/chat_terminal.h"

#include <filesystem>
#include <istream>
#include <ostream>
#include <set>

#include "framework/error.h"
#include "framework/text/parse_number.h"

namespace cb {

const char* const kTerminalHelp =
    "commands: /image PATH | /audio PATH | /video PATH (a file or a folder of frames) | /reset | /quit\n"
    "          /temperature X | /top-p X | /beams N | /max-new-tokens N | /settings | /help\n"
    "anything else is a question about the uploaded media.\n";

namespace {

void print_settings(const ChatSettings& s, std::ostream& out) {
  out << fmt::format("settings: temperature {}, top_p {}, beams {}, max_new_tokens {}{}\n", s.temperature, s.top_p,
                     s.num_beams, s.max_new_tokens, s.do_sample ? "" : " (greedy)");
}

}  // namespace

bool terminal_command(ChatSession& chat, ChatSettings& settings, const ChatMediaOptions& media, const std::string& name,
                      const std::string& arg, std::ostream& out) {
  static const std::set<std::string> with_arg = {"/image", "/audio", "/video",         "/temperature",
                                                 "/top-p", "/beams", "/max-new-tokens"};
  static const std::set<std::string> without_arg = {"/quit", "/exit", "/help", "/settings", "/reset"};
  if (with_arg.count(name) && arg.empty()) fail("{} needs an argument (see /help)", name);
  if (without_arg.count(name) && !arg.empty()) fail("{} takes no argument, got '{}'", name, arg);
  if (name == "/quit" || name == "/exit") return false;
  if (name == "/help") {
    out << kTerminalHelp;
    print_settings(settings, out);
  } else if (name == "/settings") {
    print_settings(settings, out);
  } else if (name == "/reset") {
    chat.reset();
    out << "conversation cleared\n";
  } else if (name == "/image") {
    chat.upload_image(image_from_bytes(read_media_file(arg), arg, media));
    out << "image uploaded\n";
  } else if (name == "/audio") {
    chat.upload_audio(audio_from_bytes(read_media_file(arg), arg, media));
    out << "audio uploaded\n";
  } else if (name == "/video") {
    auto clip = std::filesystem::is_directory(arg) ? video_from_frame_dir(arg, media)
                                                   : video_from_bytes(read_media_file(arg), arg, media);
    chat.upload_video(clip.frames, clip.fbank);
    out << (clip.fbank ? "video and its soundtrack uploaded\n" : "video uploaded (no soundtrack)\n");
  } else if (name == "/temperature") {
    const auto t = parse_number<double>(arg, name);
    if (!(t > 0)) fail("/temperature must be > 0");
    settings.temperature = t;
    print_settings(settings, out);
  } else if (name == "/top-p") {
    const auto p = parse_number<double>(arg, name);
    if (!(p > 0 && p <= 1)) fail("/top-p must be in (0, 1]");
    settings.top_p = p;
    print_settings(settings, out);
  } else if (name == "/beams") {
    const auto n = parse_number<int64_t>(arg, name);
    if (n < 1 || n > kMaxChatBeams) fail("/beams must be in 1..{}", kMaxChatBeams);
    settings.num_beams = n;
    print_settings(settings, out);
  } else if (name == "/max-new-tokens") {
    const auto n = parse_number<int64_t>(arg, name);
    if (n < 1 || n >= settings.max_length) fail("/max-new-tokens must be in 1..{}", settings.max_length - 1);
    settings.max_new_tokens = n;
    print_settings(settings, out);
  } else {
    fail("unknown command {} (see /help)", name);
  }
  return true;
}

void terminal_chat(ChatSession& chat, ChatSettings settings, const ChatMediaOptions& media, std::istream& in,
                   std::ostream& out) {
  out << kTerminalHelp;
  std::string line;
  while (out << "Human: " << std::flush, std::getline(in, line)) {
    line = strip_whitespace(line);
    if (line.empty()) continue;
    try {
      if (line.front() == '/') {
        const auto space = line.find(' ');
        const auto name = line.substr(0, space);
        const auto arg = space == std::string::npos ? "" : strip_whitespace(line.substr(space + 1));
        if (!terminal_command(chat, settings, media, name, arg, out)) break;
        continue;
      }
      const auto before = chat.conversation().messages;  // a question whose answer fails is not kept
      try {
        chat.ask(line);
        out << "Assistant: " << std::flush;
        chat.answer(settings, [&out](const std::string& delta) {
          out << delta << std::flush;
          return false;
        });
      } catch (...) {
        chat.conversation().messages = before;
        throw;
      }
      out << "\n";
    } catch (const std::exception& e) {  // cb::Error, or a LibTorch error (its first line; the rest is a backtrace)
      const std::string what = e.what();
      out << "\nerror: " << what.substr(0, what.find('\n')) << "\n";
    }
  }
}

}  // namespace cb
