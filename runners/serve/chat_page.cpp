// The page at `/`: a single self-contained HTML file (no external resources) that talks to
// /v1/chat/completions with stream: true and keeps the conversation in the browser. Its sliders are the
// demo's (temperature, beams 1..10) plus top-p and the answer length; the API key field fills the
// Authorization header for a server started with --api-key. Several attachments (image + audio) may go
// with one message, each removable before sending; a failed request keeps them for the resend.
#include "runners/serve/chat_server.h"

namespace cb {

const std::string& chat_page_html() {
  static const std::string page = R"HTML(<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>ChatBridge</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<style>
body{font-family:system-ui,sans-serif;margin:0;display:flex;height:100vh;background:#f4f5f7;color:#222}
#side{width:270px;padding:16px;background:#fff;border-right:1px solid #ddd;overflow:auto}
#main{flex:1;display:flex;flex-direction:column}
#log{flex:1;overflow:auto;padding:16px}
.msg{max-width:75%;margin:8px 0;padding:10px 14px;border-radius:10px;white-space:pre-wrap;line-height:1.4}
.user{background:#d9ecff;margin-left:auto}.assistant{background:#fff;border:1px solid #ddd}
.error{background:#ffe3e3;border:1px solid #f5a5a5}.empty{color:#999;font-style:italic}
.media{display:block;max-width:240px;max-height:180px;margin-bottom:6px;border-radius:6px}
#bar{display:flex;gap:8px;padding:12px;background:#fff;border-top:1px solid #ddd}
#text{flex:1;padding:8px;font-size:15px}button{padding:8px 14px;cursor:pointer}
label{display:block;margin:14px 0 4px;font-size:13px}input[type=range]{width:100%}
#pending{font-size:13px;color:#555;margin-top:8px}.rm{padding:0 6px;margin-left:4px}h1{font-size:20px;margin:0 0 8px}
</style></head><body>
<div id="side"><h1>ChatBridge</h1>
<label for="file">Upload image / video / audio</label>
<input id="file" type="file" accept="image/jpeg,image/png,video/*,.wav,.mp3,.flac,.ogg,.m4a,.webm">
<div id="pending"></div>
<label>Temperature: <span id="tv">1.0</span></label><input id="temperature" type="range" min="0.1" max="2" step="0.1" value="1.0">
<label>Top-p: <span id="pv">0.9</span></label><input id="top_p" type="range" min="0.05" max="1" step="0.05" value="0.9">
<label>Max new tokens: <span id="mv">300</span></label><input id="max_tokens" type="range" min="1" max="600" step="1" value="300">
<label>Beams: <span id="bv">1</span></label><input id="num_beams" type="range" min="1" max="10" step="1" value="1">
<label for="api_key">API key (when the server asks for one)</label><input id="api_key" type="password" autocomplete="off">
<p><button id="clear">Clear conversation</button></p></div>
<div id="main"><div id="log"></div>
<form id="bar"><input id="text" autocomplete="off" placeholder="Ask about the uploaded media..."><button id="send" type="submit">Send</button></form></div>
<script>
const $ = id => document.getElementById(id);
// `current` is the AbortController of the request in flight: Clear aborts it, and a request that is no
// longer current must not touch the new conversation.
let history = [], pending = [], current = null;
for (const [s, v] of [["temperature","tv"],["top_p","pv"],["max_tokens","mv"],["num_beams","bv"]])
  $(s).oninput = () => { $(v).textContent = $(s).value; };
function bubble(cls, text, mediaEls = []) {
  const d = document.createElement("div"); d.className = "msg " + cls;
  for (const m of mediaEls) d.appendChild(m);
  d.appendChild(document.createTextNode(text)); $("log").appendChild(d);
  $("log").scrollTop = $("log").scrollHeight; return d;
}
function showPending() {
  $("pending").replaceChildren(...pending.map(p => {
    const row = document.createElement("div"); row.className = "att"; row.textContent = p.kind + ": " + p.name + " ";
    const x = document.createElement("button"); x.className = "rm"; x.type = "button"; x.title = "Remove"; x.textContent = "×";
    x.onclick = () => { pending = pending.filter(q => q !== p); showPending(); };
    row.appendChild(x); return row;
  }));
  if (!pending.length) $("pending").textContent = "No media attached.";
}
showPending();
function readDataUrl(file) {
  return new Promise((ok, bad) => { const r = new FileReader(); r.onload = () => ok(r.result); r.onerror = bad; r.readAsDataURL(file); });
}
// What the server decodes: JPEG/PNG images, videos through FFmpeg, audio in these formats (by extension).
const AUDIO = ["wav", "mp3", "flac", "ogg", "m4a", "webm"];
const ACCEPTED = "JPEG or PNG images, videos (MP4, WebM, ...), audio (" + AUDIO.join(", ") + ")";
$("file").onchange = async () => {
  const f = $("file").files[0]; if (!f) return;
  $("file").value = "";
  const ext = f.name.includes(".") ? f.name.split(".").pop().toLowerCase() : "";
  const kind = ["image/jpeg", "image/png"].includes(f.type) ? "image" : f.type.startsWith("video/") ? "video"
             : AUDIO.includes(ext) && (f.type.startsWith("audio/") || !f.type) ? "audio" : "";
  if (!kind) { bubble("error", "Cannot use '" + f.name + "': the server accepts " + ACCEPTED + "."); return; }
  const url = await readDataUrl(f);
  const part = kind === "image" ? {type: "image_url", image_url: {url}}
             : kind === "video" ? {type: "video_url", video_url: {url}}
             : {type: "input_audio", input_audio: {data: url.split(",")[1], format: ext}};
  pending.push({part, url, kind, name: f.name}); showPending();
};
$("clear").onclick = () => {
  if (current) current.abort();
  current = null; history = []; pending = []; showPending();
  $("log").replaceChildren(); $("send").disabled = false;
};
async function errorText(res) {
  if (res.status === 401) return "wrong or missing API key: enter it in the API key field";
  const e = await res.json().catch(() => ({}));
  return (e.error && e.error.message) || res.status + " " + res.statusText;
}
$("bar").onsubmit = async ev => {
  ev.preventDefault();
  const text = $("text").value.trim(); if (current || (!text && !pending.length)) return;  // one at a time
  const sent = pending, content = sent.map(p => p.part); if (text) content.push({type: "text", text});
  bubble("user", text, sent.map(p => {
    const m = document.createElement(p.kind === "image" ? "img" : p.kind); m.src = p.url;
    m.className = "media"; if (p.kind !== "image") m.controls = true; return m;
  }));
  history.push({role: "user", content}); pending = []; showPending();
  $("text").value = ""; $("send").disabled = true;
  const ctl = current = new AbortController();
  const out = bubble("assistant", ""); let answer = "";
  try {
    const headers = {"Content-Type": "application/json"};
    if ($("api_key").value) headers.Authorization = "Bearer " + $("api_key").value;
    const res = await fetch("/v1/chat/completions", {method: "POST", headers, signal: ctl.signal,
      body: JSON.stringify({messages: history, stream: true, temperature: +$("temperature").value,
                            top_p: +$("top_p").value, max_tokens: +$("max_tokens").value,
                            num_beams: +$("num_beams").value})});
    if (ctl !== current) return;
    if (!res.ok) throw new Error(await errorText(res));
    const reader = res.body.getReader(), dec = new TextDecoder(); let buf = "";
    for (;;) {
      const {done, value} = await reader.read(); if (done || ctl !== current) break;
      buf += dec.decode(value, {stream: true}); let i;
      while ((i = buf.indexOf("\n\n")) >= 0) {
        const line = buf.slice(0, i).trim(); buf = buf.slice(i + 2);
        if (!line.startsWith("data: ") || line === "data: [DONE]") continue;
        const ev = JSON.parse(line.slice(6));
        if (ev.error) throw new Error(ev.error.message);
        const c = ev.choices && ev.choices[0];  // a usage-only chunk has no choices
        if (c && c.delta.content) { answer += c.delta.content; out.textContent = answer; }
      }
    }
    if (ctl !== current) return;
    if (!answer) { out.classList.add("empty"); out.textContent = "(empty answer)"; }
    history.push({role: "assistant", content: answer});
  } catch (e) {
    if (ctl !== current) return;  // aborted by Clear: its conversation is gone
    out.className = "msg error"; out.textContent = "Error: " + e.message; history.pop();
    pending = sent.concat(pending); showPending();  // keep the media so the user can fix and resend
  } finally {
    if (ctl === current) { current = null; $("send").disabled = false; $("text").focus(); }
  }
};
</script></body></html>
)HTML";
  return page;
}

}  // namespace cb
