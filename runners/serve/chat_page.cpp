// The page at `/`: a single self-contained HTML file (no external resources) that talks to
// /v1/chat/completions with stream: true and keeps the conversation in the browser. Its sliders are the
// demo's (temperature, beams 1..10) plus top-p and the answer length; the API key field fills the
// Authorization header for a server started with --api-key.
#include "runners/serve/chat_server.h"

namespace cb {

const std::string& chat_page_html() {
  static const std::string page = R"HTML(<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>ChatBridge</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font-family:system-ui,sans-serif;margin:0;display:flex;height:100vh;background:#f4f5f7;color:#222}
#side{width:270px;padding:16px;background:#fff;border-right:1px solid #ddd;overflow:auto}
#main{flex:1;display:flex;flex-direction:column}
#log{flex:1;overflow:auto;padding:16px}
.msg{max-width:75%;margin:8px 0;padding:10px 14px;border-radius:10px;white-space:pre-wrap;line-height:1.4}
.user{background:#d9ecff;margin-left:auto}.assistant{background:#fff;border:1px solid #ddd}
.error{background:#ffe3e3;border:1px solid #f5a5a5}
.media{display:block;max-width:240px;max-height:180px;margin-bottom:6px;border-radius:6px}
#bar{display:flex;gap:8px;padding:12px;background:#fff;border-top:1px solid #ddd}
#text{flex:1;padding:8px;font-size:15px}button{padding:8px 14px;cursor:pointer}
label{display:block;margin:14px 0 4px;font-size:13px}input[type=range]{width:100%}
#pending{font-size:13px;color:#555;margin-top:8px}h1{font-size:20px;margin:0 0 8px}
</style></head><body>
<div id="side"><h1>ChatBridge</h1>
<label for="file">Upload image / video / audio</label>
<input id="file" type="file" accept="image/*,video/*,audio/*">
<div id="pending">No media attached.</div>
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
let history = [], pending = [];
for (const [s, v] of [["temperature","tv"],["top_p","pv"],["max_tokens","mv"],["num_beams","bv"]])
  $(s).oninput = () => { $(v).textContent = $(s).value; };
function bubble(cls, text, mediaEl) {
  const d = document.createElement("div"); d.className = "msg " + cls;
  if (mediaEl) d.appendChild(mediaEl);
  d.appendChild(document.createTextNode(text)); $("log").appendChild(d);
  $("log").scrollTop = $("log").scrollHeight; return d;
}
function readDataUrl(file) {
  return new Promise((ok, bad) => { const r = new FileReader(); r.onload = () => ok(r.result); r.onerror = bad; r.readAsDataURL(file); });
}
$("file").onchange = async () => {
  const f = $("file").files[0]; if (!f) return;
  const url = await readDataUrl(f); const kind = f.type.split("/")[0];
  let part;
  if (kind === "image") part = {type: "image_url", image_url: {url}};
  else if (kind === "video") part = {type: "video_url", video_url: {url}};
  else if (kind === "audio") part = {type: "input_audio", input_audio: {data: url.split(",")[1], format: (f.name.split(".").pop() || "wav").toLowerCase()}};
  else { bubble("error", "Unsupported file type: " + f.type); return; }
  pending.push({part, url, kind});
  $("pending").textContent = pending.map(p => p.kind).join(" + ") + " attached to the next message.";
  $("file").value = "";
};
$("clear").onclick = () => { history = []; pending = []; $("log").innerHTML = ""; $("pending").textContent = "No media attached."; };
$("bar").onsubmit = async ev => {
  ev.preventDefault();
  const text = $("text").value.trim(); if (!text && !pending.length) return;
  const content = pending.map(p => p.part); if (text) content.push({type: "text", text});
  let mediaEl = null;
  for (const p of pending) {
    mediaEl = document.createElement(p.kind === "image" ? "img" : p.kind); mediaEl.src = p.url;
    mediaEl.className = "media"; if (p.kind !== "image") mediaEl.controls = true;
  }
  bubble("user", text, mediaEl);
  history.push({role: "user", content}); pending = []; $("pending").textContent = "No media attached.";
  $("text").value = ""; $("send").disabled = true;
  const out = bubble("assistant", ""); let answer = "";
  try {
    const headers = {"Content-Type": "application/json"};
    if ($("api_key").value) headers.Authorization = "Bearer " + $("api_key").value;
    const res = await fetch("/v1/chat/completions", {method: "POST", headers,
      body: JSON.stringify({messages: history, stream: true, temperature: +$("temperature").value,
                            top_p: +$("top_p").value, max_tokens: +$("max_tokens").value,
                            num_beams: +$("num_beams").value})});
    if (!res.ok) { const e = await res.json().catch(() => ({})); throw new Error((e.error && e.error.message) || res.statusText); }
    const reader = res.body.getReader(), dec = new TextDecoder(); let buf = "";
    for (;;) {
      const {done, value} = await reader.read(); if (done) break;
      buf += dec.decode(value, {stream: true}); let i;
      while ((i = buf.indexOf("\n\n")) >= 0) {
        const line = buf.slice(0, i).trim(); buf = buf.slice(i + 2);
        if (!line.startsWith("data: ") || line === "data: [DONE]") continue;
        const ev = JSON.parse(line.slice(6));
        if (ev.error) throw new Error(ev.error.message);
        const d = ev.choices[0].delta.content; if (d) { answer += d; out.textContent = answer; }
      }
    }
    history.push({role: "assistant", content: answer});
  } catch (e) { out.className = "msg error"; out.textContent = "Error: " + e.message; history.pop(); }
  $("send").disabled = false; $("text").focus();
};
</script></body></html>
)HTML";
  return page;
}

}  // namespace cb
