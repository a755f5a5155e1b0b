#!/bin/sh
# trace_svg_test.sh - test procpool-trace, the trace-to-SVG renderer.
#
# usage: trace_svg_test.sh PROCPOOL-TRACE FIXTURE_DIR
#
#   (a) tests/trace/small.json (2 pools, 5 lanes, every outcome, a death and
#       a respawn, a timeout, a terminate, counters, a hostile name) renders
#       to well-formed XML with one rect of class "span" per X event, a
#       tooltip per span, one mark per instant event, a step curve per
#       counter series, the lane and pool names, the hostile names escaped
#       (they read back intact), and nothing that could fetch or run
#       anything (no script, no href, no url());
#   (b) copies cut short after a complete line (no "]", trailing comma), in
#       the middle of a line, and a compact one-line array render too;
#   (c) an empty trace ("[" alone, "[]", an empty file) is a valid SVG that
#       says "no events";
#   (d) garbage, a file that does not exist, "[" then garbage: exit 1, a
#       message on stderr, nothing on stdout, no -o file;
#   (f) 200 000 synthetic spans render within the time limit into < 10 MB;
#   (e) headless Chromium opens the SVGs without an XML error (--dump-dom
#       has no parsererror) and their screenshots are not blank (> 1 %
#       non-white pixels, >= 5 colours).
# Exit status: 0 all passed; 1 a check failed; 77 all other checks passed
# but Chromium is not installed, so (e) did not run (CTest: skipped).
set -u

bin=$1
fixdir=$2
me=trace_svg_test
fails=0

fail() {
    echo "$me: FAIL: $*" >&2
    fails=$((fails + 1))
}
ok() {
    echo "$me: ok: $*"
}

if ! command -v python3 >/dev/null 2>&1; then
    echo "$me: python3 is needed to read the SVG and the PNG; skipped" >&2
    exit 77
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/trace_svg_test.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT INT TERM

# check.py SVG [key=value...]: well-formed, and the counts asked for
cat >"$tmp/check.py" <<'EOF'
import sys, re, xml.etree.ElementTree as ET
NS = '{http://www.w3.org/2000/svg}'
path, want = sys.argv[1], dict(a.split('=', 1) for a in sys.argv[2:])
try:
    root = ET.parse(path).getroot()
except ET.ParseError as e:
    print('not well-formed XML: %s' % e); sys.exit(1)
bad = []
if root.tag != NS + 'svg':
    bad.append('root is %s, not svg' % root.tag)
def cls(e):
    return (e.get('class') or '').split()
def walk(e):   # every element but the legend's, which shows each kind once
    yield e
    for c in e:
        if not (c.tag == NS + 'g' and 'legend' in cls(c)):
            yield from walk(c)
els = list(walk(root))
count = {
    'span': sum(1 for e in els if e.tag == NS + 'rect' and 'span' in cls(e)),
    'busy': sum(1 for e in els if e.tag == NS + 'rect' and 'busy' in cls(e)),
    'spantip': sum(1 for e in els if e.tag == NS + 'rect' and 'span' in cls(e)
                   and e.find(NS + 'title') is not None),
    'death': sum(1 for e in els if e.tag == NS + 'path' and 'mark' in cls(e) and 'death' in cls(e)),
    'respawn': sum(1 for e in els if e.tag == NS + 'path' and 'mark' in cls(e) and 'respawn' in cls(e)),
    'timeout': sum(1 for e in els if e.tag == NS + 'path' and 'mark' in cls(e) and 'timeout' in cls(e)),
    'terminate': sum(1 for e in els if e.tag == NS + 'line' and 'terminate' in cls(e)),
    'queued': sum(1 for e in els if e.tag == NS + 'path' and 'queued' in cls(e) and len(e.get('d', '')) > 5),
    'inflight': sum(1 for e in els if e.tag == NS + 'path' and 'inflight' in cls(e) and len(e.get('d', '')) > 5),
    'pool': sum(1 for e in els if e.tag == NS + 'g' and 'pool' in cls(e)),
    'lane': sum(1 for e in els if e.tag == NS + 'g' and 'lane' in cls(e)),
}
texts = [''.join(e.itertext()) for e in els if e.tag in (NS + 'text', NS + 'title')]
for k, v in want.items():
    if k == 'text':         # a text or title that holds v
        if not any(v in t for t in texts):
            bad.append('no text holds %r' % v)
    elif k == 'exact':      # a text that is exactly v
        if v not in texts:
            bad.append('no text is exactly %r' % v)
    elif k.startswith('max_'):
        if count[k[4:]] > int(v):
            bad.append('%s: %d, want at most %s' % (k[4:], count[k[4:]], v))
    elif count[k] != int(v):
        bad.append('%s: %d, want %s' % (k, count[k], v))
raw = open(path, encoding='utf-8').read()
for pat in (r'<script', r'href', r'url\(', r'@import', r'<image', r'<foreignObject'):
    if re.search(pat, raw, re.I):
        bad.append('it holds %s' % pat)
if re.search(r'https?://(?!www\.w3\.org/2000/svg")', raw):
    bad.append('it names a URL')
for b in bad:
    print(b)
sys.exit(1 if bad else 0)
EOF

# svg_ok NAME SVG [key=value...]
svg_ok() {
    name=$1
    shift
    if msg=$(python3 "$tmp/check.py" "$@" 2>&1); then
        ok "$name"
    else
        fail "$name: $(echo "$msg" | tr '\n' ';')"
    fi
}

# events PH FILE: how many complete lines of FILE are events of phase PH
events() {
    grep -c "\"ph\":\"$1\"" "$2"
}

# ---- (a) the fixture ------------------------------------------------------
small=$fixdir/small.json
nx=$(events X "$small")
if "$bin" "$small" >"$tmp/small.svg" 2>"$tmp/small.err"; then
    ok "(a) small.json renders"
else
    fail "(a) small.json: exit $?: $(cat "$tmp/small.err")"
fi
[ -s "$tmp/small.err" ] && fail "(a) small.json: stderr: $(cat "$tmp/small.err")"
svg_ok "(a) small.json: one span rect with a tooltip per X event ($nx), marks, counters, names" \
    "$tmp/small.svg" span="$nx" spantip="$nx" busy=0 death=1 respawn=1 timeout=1 \
    terminate=1 queued=2 inflight=2 pool=2 lane=5 \
    exact="worker 0" exact="worker 1" exact="worker 2" exact="slot 1" \
    exact="slot <&\"'> 2" exact="procpool jobs" exact="pool 1 (pid 4242, 3 workers)" \
    text="echo a<b && c>\"d\" & 'e'" text="small.json" text="PP_ETASKTIMEOUT" text="killed (signal 9)"
python3 "$tmp/check.py" "$tmp/small.svg" text="no such text" >/dev/null 2>&1 \
    && fail "(a) the checker finds a text that is not there"
if grep -q "a<b" "$tmp/small.svg" || grep -q "<&" "$tmp/small.svg"; then
    fail "(a) a name is in the SVG unescaped"
fi
# -o writes the same picture; stdin reads the same trace
"$bin" -o "$tmp/small-o.svg" "$small" && cmp -s "$tmp/small-o.svg" "$tmp/small.svg" \
    && ok "(a) -o OUT" || fail "(a) -o OUT differs from standard output"
"$bin" - <"$small" >"$tmp/small-in.svg" \
    && svg_ok "(a) standard input" "$tmp/small-in.svg" span="$nx" text="(standard input)" \
    || fail "(a) standard input"

# ---- (b) cut short ----------------------------------------------------------
head -n 20 "$small" >"$tmp/cut.json"
ncut=$(events X "$tmp/cut.json")
tail -c 2 "$tmp/cut.json" | grep -q ',' || fail "(b) the cut copy should end with a comma"
if "$bin" "$tmp/cut.json" >"$tmp/cut.svg" 2>"$tmp/cut.err"; then
    svg_ok "(b) cut after line 20 ($ncut spans)" "$tmp/cut.svg" span="$ncut" death=1 respawn=1
else
    fail "(b) cut after line 20: exit $?: $(cat "$tmp/cut.err")"
fi
# cut in the middle of line 21: that line is dropped with a warning
{ cat "$tmp/cut.json"; sed -n 21p "$small" | cut -c 1-40 | tr -d '\n'; } >"$tmp/mid.json"
if "$bin" "$tmp/mid.json" >"$tmp/mid.svg" 2>"$tmp/mid.err"; then
    svg_ok "(b) cut in the middle of a line" "$tmp/mid.svg" span="$ncut"
    grep -q "cut short" "$tmp/mid.err" && ok "(b) the cut line is reported" \
        || fail "(b) no warning for the cut line: $(cat "$tmp/mid.err")"
else
    fail "(b) cut in the middle of a line: exit $?: $(cat "$tmp/mid.err")"
fi
# all events on one line, with and without its "]"
python3 -c 'import json,sys; ev=[json.loads(l.rstrip().rstrip(",")) for l in open(sys.argv[1]) if l.startswith("{")]; print(json.dumps(ev,separators=(",",":")))' \
    "$small" >"$tmp/compact.json"
if "$bin" "$tmp/compact.json" >"$tmp/compact.svg" 2>"$tmp/compact.err"; then
    svg_ok "(b) a compact one-line array" "$tmp/compact.svg" span="$nx" death=1 lane=5
else
    fail "(b) a compact one-line array: exit $?: $(cat "$tmp/compact.err")"
fi

# ---- (c) empty traces -------------------------------------------------------
printf '[\n' >"$tmp/empty1.json"
printf '[]\n' >"$tmp/empty2.json"
printf '[\n]\n' >"$tmp/empty3.json"
: >"$tmp/empty4.json"
for e in empty1 empty2 empty3 empty4; do
    if "$bin" "$tmp/$e.json" >"$tmp/$e.svg" 2>"$tmp/$e.err"; then
        svg_ok "(c) $e: a valid SVG that says no events" "$tmp/$e.svg" span=0 exact="no events"
    else
        fail "(c) $e: exit $?: $(cat "$tmp/$e.err")"
    fi
done

# ---- (d) bad input ----------------------------------------------------------
printf 'this is not JSON at all\n' >"$tmp/garbage.json"
printf '[\nnot JSON either\n' >"$tmp/garbage2.json"
printf '{"traceEvents": []}\n' >"$tmp/garbage3.json"
for g in garbage garbage2 garbage3 does-not-exist; do
    rm -f "$tmp/$g.svg"
    "$bin" "$tmp/$g.json" >"$tmp/$g.out" 2>"$tmp/$g.err"
    rc=$?
    "$bin" -o "$tmp/$g.svg" "$tmp/$g.json" 2>/dev/null
    if [ "$rc" = 1 ] && [ -s "$tmp/$g.err" ] && [ ! -s "$tmp/$g.out" ] && [ ! -e "$tmp/$g.svg" ]; then
        ok "(d) $g: exit 1, $(head -n 1 "$tmp/$g.err")"
    else
        fail "(d) $g: exit $rc, stderr '$(cat "$tmp/$g.err")', $(wc -c <"$tmp/$g.out") bytes out"
    fi
done

# ---- (f) a large trace ------------------------------------------------------
awk 'BEGIN {
    n = 200000; lanes = 16; srand(7)
    print "["
    print "{\"ph\":\"M\",\"name\":\"process_name\",\"pid\":1,\"args\":{\"name\":\"pool 1 (pid 1, 16 workers)\"}},"
    for (t = 0; t < lanes; t++) {
        printf "{\"ph\":\"M\",\"name\":\"thread_name\",\"pid\":1,\"tid\":%d,\"args\":{\"name\":\"worker %d\"}},\n", t, t
        ts[t] = 0
    }
    for (i = 0; i < n; i++) {
        t = i % lanes; d = 5 + 45 * rand(); r = rand()
        oc = r < 0.97 ? "ok" : r < 0.98 ? "PP_ETASK" : r < 0.99 ? "PP_EWORKER" : "PP_ETASKTIMEOUT"
        printf "{\"ph\":\"X\",\"name\":\"task_%d\",\"cat\":\"task\",\"pid\":1,\"tid\":%d,\"ts\":%.3f,\"dur\":%.3f,\"args\":{\"outcome\":\"%s\",\"worker_pid\":%d}},\n", i % 7, t, ts[t], d, oc, 100 + t
        ts[t] += d + 3 * rand()
        if (i % 64 == 0)
            printf "{\"ph\":\"C\",\"name\":\"queue\",\"pid\":1,\"ts\":%.3f,\"args\":{\"queued\":%d,\"in_flight\":%d}},\n", ts[t], (n - i) / 100, lanes
        if (i % 5000 == 0)
            printf "{\"ph\":\"i\",\"name\":\"death\",\"pid\":1,\"tid\":%d,\"ts\":%.3f,\"s\":\"t\",\"args\":{\"worker_pid\":%d,\"signal\":9}},\n", t, ts[t], 100 + t
    }
    print "{\"ph\":\"i\",\"name\":\"terminate\",\"pid\":1,\"tid\":0,\"ts\":1,\"s\":\"p\"}"
    print "]"
}' >"$tmp/big.json"
start=$(date +%s)
if timeout 120 "$bin" "$tmp/big.json" >"$tmp/big.svg" 2>"$tmp/big.err"; then
    secs=$(($(date +%s) - start))
    size=$(wc -c <"$tmp/big.svg")
    if [ "$size" -lt 10000000 ]; then
        ok "(f) 200000 spans: $secs s, $size bytes"
    else
        fail "(f) 200000 spans: $size bytes, want < 10 MB"
    fi
    svg_ok "(f) 200000 spans: merged into busy bars, bounded" "$tmp/big.svg" spantip=0 max_span=20000 \
        lane=16 text="200000 tasks"
    python3 "$tmp/check.py" "$tmp/big.svg" busy=0 >/dev/null 2>&1 && fail "(f) no busy bars"
else
    fail "(f) 200000 spans: exit $? (124: over 120 s): $(cat "$tmp/big.err")"
fi

# ---- (e) headless Chromium ----------------------------------------------------
chromium=
for c in chromium chromium-browser google-chrome; do
    if command -v "$c" >/dev/null 2>&1; then
        chromium=$(command -v "$c")
        break
    fi
done

cat >"$tmp/png.py" <<'EOF'
# png.py FILE: not blank? (8-bit RGB or RGBA, non-interlaced, as Chromium writes)
import sys, struct, zlib
data = open(sys.argv[1], 'rb').read()
if data[:8] != b'\x89PNG\r\n\x1a\n':
    print('not a PNG'); sys.exit(1)
pos, idat, hdr = 8, b'', None
while pos < len(data):
    n, kind = struct.unpack('>I4s', data[pos:pos + 8])
    body = data[pos + 8:pos + 8 + n]
    if kind == b'IHDR':
        hdr = struct.unpack('>IIBBBBB', body)
    elif kind == b'IDAT':
        idat += body
    pos += 12 + n
w, h, depth, ctype, _, _, interlace = hdr
if depth != 8 or ctype not in (2, 6) or interlace:
    print('PNG kind not handled: depth %d colour type %d interlace %d' % (depth, ctype, interlace))
    sys.exit(1)
bpp = 3 if ctype == 2 else 4
raw = zlib.decompress(idat)
stride = w * bpp
prev = bytearray(stride)
colours, nonwhite = set(), 0
for y in range(h):
    f = raw[y * (stride + 1)]
    line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
    for i in range(stride):
        a = line[i - bpp] if i >= bpp else 0
        b = prev[i]
        c = prev[i - bpp] if i >= bpp else 0
        if f == 1: line[i] = (line[i] + a) & 255
        elif f == 2: line[i] = (line[i] + b) & 255
        elif f == 3: line[i] = (line[i] + (a + b) // 2) & 255
        elif f == 4:
            p = a + b - c; pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
    for x in range(0, stride, bpp):
        px = bytes(line[x:x + 3])
        colours.add(px)
        if px != b'\xff\xff\xff':
            nonwhite += 1
    prev = line
share = nonwhite / float(w * h)
print('%dx%d, %.1f%% non-white, %d colours' % (w, h, 100 * share, len(colours)))
sys.exit(0 if share > 0.01 and len(colours) >= 5 else 1)
EOF

if [ -z "$chromium" ]; then
    echo "$me: (e) Chromium is not installed (Debian: apt-get install chromium): the picture is not looked at"
    if [ "$fails" -gt 0 ]; then
        echo "$me: $fails checks failed" >&2
        exit 1
    fi
    exit 77
fi

# chrome_look NAME SVG [dom]: no XML error in the page, and (unless "dom") a
# screenshot that is not blank
chrome_look() {
    name=$1
    svg=$2
    only=${3-}
    prof=$(mktemp -d "$tmp/chromium.XXXXXX")
    timeout 60 "$chromium" --headless --no-sandbox --disable-gpu --user-data-dir="$prof" \
        --dump-dom "file://$svg" >"$tmp/$name.dom" 2>"$tmp/$name.chrome-err"
    rc=$?
    if [ "$rc" != 0 ] || ! grep -q "<svg" "$tmp/$name.dom"; then
        fail "(e) $name: chromium --dump-dom: exit $rc, $(tail -n 3 "$tmp/$name.chrome-err")"
    elif grep -qi "parsererror" "$tmp/$name.dom"; then
        fail "(e) $name: Chromium shows an XML error: $(grep -i -A3 parsererror "$tmp/$name.dom" | head -n 5)"
    else
        ok "(e) $name: Chromium reads it without an error"
    fi
    if [ "$only" = dom ]; then
        rm -rf "$prof"
        return
    fi
    timeout 60 "$chromium" --headless --no-sandbox --disable-gpu --user-data-dir="$prof" \
        --hide-scrollbars --screenshot="$tmp/$name.png" --window-size=1200,800 \
        "file://$svg" >"$tmp/$name.chrome-out" 2>&1
    rc=$?
    if [ "$rc" != 0 ] || [ ! -s "$tmp/$name.png" ]; then
        fail "(e) $name: chromium --screenshot: exit $rc, $(tail -n 3 "$tmp/$name.chrome-out")"
    elif msg=$(python3 "$tmp/png.py" "$tmp/$name.png" 2>&1); then
        ok "(e) $name: screenshot $msg"
    else
        fail "(e) $name: the screenshot looks blank: $msg"
    fi
    rm -rf "$prof"
}

chrome_look small "$tmp/small.svg"
chrome_look big "$tmp/big.svg"
chrome_look empty "$tmp/empty1.svg" dom

if [ "$fails" -gt 0 ]; then
    echo "$me: $fails checks failed" >&2
    exit 1
fi
echo "$me: all passed"
exit 0
