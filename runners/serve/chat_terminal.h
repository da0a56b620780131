// The demo's conversation in a terminal: lines from an input stream, answers streamed to an output
// stream. Commands: /image PATH, /audio PATH, /video PATH (a file or a folder of frames), /reset,
// /quit, /temperature X, /top-p X, /beams N, /max-new-tokens N, /settings, /help; any other line is a
// question about the uploaded media.
#pragma once
#include <iosfwd>
#include <string>

#include "runners/serve/chat_media.h"
#include "runners/serve/chat_session.h"

namespace cb {

extern const char* const kTerminalHelp;

// One command line split into name and argument; returns false on /quit or /exit. Uploads and
// settings confirm on `out`; a bad command or argument throws cb::Error and changes nothing.
bool terminal_command(ChatSession& chat, ChatSettings& settings, const ChatMediaOptions& media, const std::string& name,
                      const std::string& arg, std::ostream& out);

// The loop until /quit or the end of `in`. An error is printed and the conversation goes on; a
// question whose answer failed is not kept in the history.
void terminal_chat(ChatSession& chat, ChatSettings settings, const ChatMediaOptions& media, std::istream& in,
                   std::ostream& out);

}  // namespace cb
