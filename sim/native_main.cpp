// Native stream runner: replays $readmemh beat files on a Verilated model's stream ports.
//
// Generic over the design: the generated header "sfc_ports.h" (written by
// sfc_hls.sim.native from the engine manifest) names the model class
// (SFC_MODEL, SFC_MODEL_HEADER: a simulation top that drives the design's
// reset itself for SFC_RESET_CYCLES cycles), its clock (SFC_CLOCK), signals
// held constant (SFC_INIT) and lists the ports in
// SFC_PORTS with the SFC_SOURCE / SFC_SINK / SFC_STATUS macros, each with the
// C++ that drives or samples it (a beat may span several ports, e.g. an
// AXI4-Lite write's address and data); everything else is here.
//
//   sim_main --in NAME=FILE ... --out NAME=FILE:COUNT ... [--seed S]
//            [--in-pause P] [--out-pause P] [--max-cycles N] [--drain-cycles N]
//            [--bandwidth BYTES --prefetch BEATS --cost NAME=BYTES ...]
//
// Each input stream offers the beats of its file in order (valid never waits
// for ready; a beat stays until taken); each output stream takes beats into
// its file until COUNT have arrived.  With --in-pause / --out-pause a seeded
// generator idles valid / ready on that fraction of cycles (per stream).  The
// run ends when every output has its COUNT beats and every input is empty.
// One JSON object on stdout reports the cycles (cycle 0 is the first cycle
// out of reset; `cycles` = last output transfer + 1), per port the beats and
// the cycles of the first and last transfers, the status values and
// `bus_errors` (cycles on which SFC_BUS_ERROR held, e.g. an AXI SLVERR
// response).  Exit 0 on success, 2 on bad arguments or files, 3 when
// --max-cycles pass first.  After the last transfer the streams idle for
// --drain-cycles (16) more cycles, not counted, so that status ports (e.g. a
// busy flag) settle before they are read.
//
// With --bandwidth the streams share a memory of BYTES per cycle (a DMA model): input beats
// are fetched into a prefetch buffer of --prefetch beats per stream and offered from it,
// output beats go into a write buffer of as many beats and leave from it; each cycle the
// budget grows by BYTES (up to BYTES + the largest cost) and is spent round robin over the
// streams, a beat of stream NAME costing its --cost.  `cycles` then ends with the last
// output beat written.
#include <verilated.h>

#include <algorithm>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "sfc_ports.h"
#include SFC_MODEL_HEADER

#ifndef SFC_CLOCK
#define SFC_CLOCK clk
#endif
#ifndef SFC_RESET_CYCLES
#define SFC_RESET_CYCLES 3
#endif
#ifndef SFC_INIT
#define SFC_INIT
#endif
#ifndef SFC_BUS_ERROR
#define SFC_BUS_ERROR false
#endif

namespace {

using Words = std::vector<uint32_t>;

[[noreturn]] void fail(int code, const std::string& message) {
    std::fprintf(stderr, "sim_main: %s\n", message.c_str());
    std::exit(code);
}

int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

// One beat per line, most significant digit first ($readmemh); '//' comments and blank lines
// skipped.  The file is read in one piece and parsed in place (a layer's act beats are MBs).
std::vector<Words> read_hex(const std::string& path, int bits) {
    FILE* f = std::fopen(path.c_str(), "rb");
    if (!f) fail(2, "cannot read " + path);
    std::string text;
    char chunk[1 << 16];
    size_t got;
    while ((got = std::fread(chunk, 1, sizeof chunk, f)) > 0) text.append(chunk, got);
    std::fclose(f);
    std::vector<Words> beats;
    const size_t nwords = (bits + 31) / 32;
    long lineno = 0;
    size_t pos = 0;
    while (pos < text.size()) {
        size_t eol = text.find('\n', pos);
        if (eol == std::string::npos) eol = text.size();
        ++lineno;
        size_t end = pos;  // the line's end, or its comment's start
        while (end < eol && !(text[end] == '/' && end + 1 < eol && text[end + 1] == '/')) ++end;
        size_t start = pos;
        while (start < end && (text[start] == ' ' || text[start] == '\t')) ++start;
        while (end > start && (text[end - 1] == ' ' || text[end - 1] == '\t' || text[end - 1] == '\r')) --end;
        pos = eol + 1;
        if (start == end) continue;
        Words w(nwords, 0);
        size_t nibble = 0;
        for (size_t k = end; k-- > start; ++nibble) {
            int v = hex_value(text[k]);
            if (v < 0) fail(2, path + ":" + std::to_string(lineno) + ": not a hex digit");
            if (v && nibble * 4 >= (size_t)bits)
                fail(2, path + ":" + std::to_string(lineno) + ": beat wider than " +
                            std::to_string(bits) + " bits");
            if (nibble / 8 < nwords) w[nibble / 8] |= (uint32_t)v << (4 * (nibble % 8));
        }
        beats.push_back(std::move(w));
    }
    return beats;
}

void write_hex(FILE* f, const Words& w, int bits) {
    const int digits = (bits + 3) / 4;
    for (int d = digits - 1; d >= 0; --d) {
        uint32_t v = (w[d / 8] >> (4 * (d % 8))) & 0xF;
        std::fputc("0123456789abcdef"[v], f);
    }
    std::fputc('\n', f);
}

// Port access for the four scalar widths and for wide (VlWide) ports.
template <typename T> void put(T& sig, const Words& w) {
    uint64_t v = w.empty() ? 0 : w[0];
    if (sizeof(T) > 4 && w.size() > 1) v |= (uint64_t)w[1] << 32;
    sig = (T)v;
}
template <std::size_t N> void put(VlWide<N>& sig, const Words& w) {
    for (std::size_t i = 0; i < N; ++i) sig[i] = i < w.size() ? w[i] : 0;
}
template <typename T> void get(const T& sig, Words& w) {
    uint64_t v = (uint64_t)sig;
    w[0] = (uint32_t)v;
    if (w.size() > 1) w[1] = (uint32_t)(v >> 32);
}
template <std::size_t N> void get(const VlWide<N>& sig, Words& w) {
    for (std::size_t i = 0; i < N && i < w.size(); ++i) w[i] = sig[i];
}

// Bits [offset, offset + width) of w, as their own word vector (for a beat split over ports).
Words slice(const Words& w, int offset, int width) {
    Words out((width + 31) / 32, 0);
    for (int b = 0; b < width; ++b) {
        const int src = offset + b;
        if ((size_t)(src / 32) < w.size() && (w[src / 32] >> (src % 32) & 1u))
            out[b / 32] |= 1u << (b % 32);
    }
    return out;
}
// The low `width` bits of port sig, or-ed into w at bit `offset` (a beat gathered from ports).
template <typename T> void get_at(const T& sig, Words& w, int offset, int width) {
    Words part((width + 31) / 32 + 1, 0);
    get(sig, part);
    for (int b = 0; b < width; ++b)
        if (part[b / 32] >> (b % 32) & 1u) w[(offset + b) / 32] |= 1u << ((offset + b) % 32);
}

// xorshift64*: a seeded pause generator per stream (same seed, same stalls).
struct Pauses {
    uint64_t state;
    uint32_t threshold;  // pause when the draw is below it
    Pauses(uint64_t seed, double p) : state(seed * 0x9E3779B97F4A7C15ull + 1), threshold((uint32_t)(p * 4294967296.0)) {}
    bool next() {
        if (!threshold) return false;
        state ^= state >> 12; state ^= state << 25; state ^= state >> 27;
        return (uint32_t)((state * 0x2545F4914F6CDD1Dull) >> 32) < threshold;
    }
};

struct Stats {
    long beats = 0, first = -1, last = -1;
    void fire(long cycle) { if (first < 0) first = cycle; last = cycle; ++beats; }
};

struct Source {
    std::string name; int bits; std::vector<Words> beats; size_t next = 0; bool offered = false;
    size_t fetched = 0; double cost = 0;  // beats in from memory (--bandwidth), bytes per beat
    std::unique_ptr<Pauses> pauses; Stats stats;
    std::function<void(const Words&)> set_payload;
    std::function<void(bool)> set_valid;
    std::function<bool()> ready;
};

struct Sink {
    std::string name; int bits; long expect = 0; FILE* file = nullptr; Words word;
    long unwritten = 0; double cost = 0;  // beats not yet in memory (--bandwidth), bytes per beat
    std::unique_ptr<Pauses> pauses; Stats stats; bool ready = false;
    std::function<void(bool)> set_ready;
    std::function<bool()> valid;
    std::function<void(Words&)> payload;
};

// The shared memory of --bandwidth: fills the prefetch buffers, empties the write buffers.
struct Memory {
    double bandwidth = 0, budget = 0, cap = 0; long prefetch = 4; size_t turn = 0;
    bool on() const { return bandwidth > 0; }
    // One cycle: grow the budget, then serve the streams round robin while it lasts.
    bool serve(std::vector<Source>& sources, std::vector<Sink>& sinks) {
        budget = std::min(budget + bandwidth, cap);
        const size_t n = sources.size() + sinks.size();
        bool wrote = false, progress = true;
        while (progress) {
            progress = false;
            for (size_t k = 0; k < n; ++k) {
                const size_t i = (turn + k) % n;
                if (i < sources.size()) {
                    Source& s = sources[i];
                    if (s.fetched < s.beats.size() && (long)(s.fetched - s.next) < prefetch &&
                        budget >= s.cost) { budget -= s.cost; ++s.fetched; progress = true; }
                } else {
                    Sink& s = sinks[i - sources.size()];
                    if (s.unwritten > 0 && budget >= s.cost) {
                        budget -= s.cost; --s.unwritten; progress = wrote = true;
                    }
                }
            }
        }
        turn = n ? (turn + 1) % n : 0;
        return wrote;
    }
};

struct Status {
    std::string name; Words word;
    std::function<void(Words&)> value;
};

}  // namespace

int main(int argc, char** argv) {
    std::map<std::string, std::string> in_files, out_files;
    std::map<std::string, long> out_counts;
    std::map<std::string, double> costs;
    Memory memory;
    uint64_t seed = 0;
    double in_pause = 0, out_pause = 0;
    long max_cycles = 100000000, drain_cycles = 16;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc) fail(2, a + " needs a value");
            return argv[++i];
        };
        if (a == "--in" || a == "--out") {
            std::string v = value();
            size_t eq = v.find('=');
            if (eq == std::string::npos) fail(2, a + " takes NAME=FILE, got " + v);
            std::string name = v.substr(0, eq), file = v.substr(eq + 1);
            if (a == "--in") { in_files[name] = file; continue; }
            size_t colon = file.rfind(':');
            if (colon == std::string::npos) fail(2, "--out takes NAME=FILE:COUNT, got " + v);
            out_files[name] = file.substr(0, colon);
            out_counts[name] = std::atol(file.substr(colon + 1).c_str());
        } else if (a == "--seed") seed = std::strtoull(value().c_str(), nullptr, 10);
        else if (a == "--in-pause") in_pause = std::atof(value().c_str());
        else if (a == "--out-pause") out_pause = std::atof(value().c_str());
        else if (a == "--max-cycles") max_cycles = std::atol(value().c_str());
        else if (a == "--drain-cycles") drain_cycles = std::atol(value().c_str());
        else if (a == "--bandwidth") memory.bandwidth = std::atof(value().c_str());
        else if (a == "--prefetch") memory.prefetch = std::atol(value().c_str());
        else if (a == "--cost") {
            std::string v = value();
            size_t eq = v.find('=');
            if (eq == std::string::npos) fail(2, "--cost takes NAME=BYTES, got " + v);
            costs[v.substr(0, eq)] = std::atof(v.substr(eq + 1).c_str());
        }
        else fail(2, "unknown argument " + a);
    }
    if (in_pause < 0 || in_pause >= 1 || out_pause < 0 || out_pause >= 1)
        fail(2, "--in-pause and --out-pause must be in [0, 1)");

    auto context = std::make_unique<VerilatedContext>();
    auto top = std::make_unique<SFC_MODEL>(context.get());
    std::vector<Source> sources;
    std::vector<Sink> sinks;
    std::vector<Status> statuses;
    uint64_t stream_index = 0;
    SFC_MODEL* dut = top.get();
    // One clock cycle with the inputs as they are (for status reads that use the bus).
    auto tick = [dut]() { dut->SFC_CLOCK = 0; dut->eval(); dut->SFC_CLOCK = 1; dut->eval(); };
    (void)tick;
    // The generated header lists the ports: SFC_SOURCE (name, bits, code setting valid from
    // `v`, ready expression, code putting beat `w` on the ports), SFC_SINK (name, bits, code
    // setting ready from `r`, valid expression, code gathering the beat into `w`, zeroed) and
    // SFC_STATUS (name, bits, code reading the value into `w`; it may clock the design).
#define SFC_SOURCE(NAME, BITS, SET_VALID, READY, ...)                                     \
    {                                                                                     \
        Source s; s.name = NAME; s.bits = BITS;                                           \
        if (in_files.count(NAME)) s.beats = read_hex(in_files[NAME], BITS);               \
        s.pauses.reset(new Pauses(seed + (++stream_index), in_pause));                   \
        s.set_payload = [dut](const Words& w) { __VA_ARGS__ };                            \
        s.set_valid = [dut](bool v) { SET_VALID };                                        \
        s.ready = [dut]() { return (bool)(READY); };                                      \
        sources.push_back(std::move(s)); in_files.erase(NAME);                            \
    }
#define SFC_SINK(NAME, BITS, SET_READY, VALID, ...)                                       \
    {                                                                                     \
        Sink s; s.name = NAME; s.bits = BITS; s.word.assign((BITS + 31) / 32, 0);         \
        if (out_files.count(NAME)) {                                                      \
            s.file = std::fopen(out_files[NAME].c_str(), "w");                            \
            if (!s.file) fail(2, "cannot write " + out_files[NAME]);                      \
            s.expect = out_counts[NAME];                                                  \
        }                                                                                 \
        s.pauses.reset(new Pauses(seed + (++stream_index), out_pause));                  \
        s.set_ready = [dut](bool r) { SET_READY };                                        \
        s.valid = [dut]() { return (bool)(VALID); };                                      \
        s.payload = [dut](Words& w) { std::fill(w.begin(), w.end(), 0u); __VA_ARGS__ };   \
        sinks.push_back(std::move(s)); out_files.erase(NAME);                             \
    }
#define SFC_STATUS(NAME, BITS, ...)                                                       \
    {                                                                                     \
        Status s; s.name = NAME; s.word.assign((BITS + 31) / 32, 0);                      \
        s.value = [dut, tick](Words& w) { (void)tick; __VA_ARGS__ };                      \
        statuses.push_back(std::move(s));                                                 \
    }
    SFC_PORTS
#undef SFC_SOURCE
#undef SFC_SINK
#undef SFC_STATUS
    if (memory.prefetch < 1) fail(2, "--prefetch must be >= 1");
    double largest = 0;
    for (auto& s : sources) {
        s.cost = costs.count(s.name) ? costs[s.name] : 0;
        largest = std::max(largest, s.cost);
        if (!memory.on()) s.fetched = s.beats.size();
        costs.erase(s.name);
    }
    for (auto& s : sinks) {
        s.cost = costs.count(s.name) ? costs[s.name] : 0;
        largest = std::max(largest, s.cost);
        costs.erase(s.name);
    }
    if (!costs.empty()) fail(2, "--cost names no stream " + costs.begin()->first);
    memory.cap = memory.bandwidth + largest;
    if (!in_files.empty()) fail(2, "no input stream " + in_files.begin()->first);
    if (!out_files.empty()) fail(2, "no output stream " + out_files.begin()->first);

    // Reset (driven inside the simulation top for SFC_RESET_CYCLES cycles), streams idle.
    SFC_INIT
    for (long k = 0; k < SFC_RESET_CYCLES; ++k) tick();

    long cycle = 0, last_out = -1, bus_errors = 0;
    bool done = false;
    for (; cycle < max_cycles && !done; ++cycle) {
        if (memory.on() && memory.serve(sources, sinks)) last_out = cycle;
        // Offer: a source keeps an offered beat; otherwise it may start the next one.
        for (auto& s : sources) {
            if (!s.offered && s.next < s.fetched && !s.pauses->next()) {
                s.set_payload(s.beats[s.next]);
                s.offered = true;
            }
            s.set_valid(s.offered);
        }
        for (auto& s : sinks) {
            s.ready = !s.pauses->next() && (!memory.on() || s.unwritten < memory.prefetch);
            s.set_ready(s.ready);
        }
        dut->SFC_CLOCK = 0;
        dut->eval();
        if (SFC_BUS_ERROR) ++bus_errors;
        // Transfers happen at this rising edge: sample them before it.
        for (auto& s : sources) {
            if (s.offered && s.ready()) { s.offered = false; ++s.next; s.stats.fire(cycle); }
        }
        for (auto& s : sinks) {
            if (s.ready && s.valid()) {
                s.stats.fire(cycle);
                last_out = cycle;
                if (memory.on()) ++s.unwritten;
                if (s.file) { s.payload(s.word); write_hex(s.file, s.word, s.bits); }
            }
        }
        dut->SFC_CLOCK = 1;
        dut->eval();
        done = true;
        for (auto& s : sources) done &= !s.offered && s.next == s.beats.size();
        for (auto& s : sinks) done &= s.stats.beats >= s.expect && s.unwritten == 0;
    }

    // A few idle cycles after the last transfer, so that status ports settle.
    for (auto& s : sources) s.set_valid(false);
    for (auto& s : sinks) s.set_ready(false);
    for (long k = 0; done && k < drain_cycles; ++k) tick();

    std::printf("{\"cycles\": %ld, \"simulated\": %ld, \"bus_errors\": %ld, \"ports\": {",
                last_out + 1, cycle, bus_errors);
    const char* sep = "";
    for (auto& s : sources) {
        std::printf("%s\"%s\": {\"beats\": %ld, \"first\": %ld, \"last\": %ld, \"queued\": %zu}", sep,
                    s.name.c_str(), s.stats.beats, s.stats.first, s.stats.last, s.beats.size());
        sep = ", ";
    }
    for (auto& s : sinks) {
        std::printf("%s\"%s\": {\"beats\": %ld, \"first\": %ld, \"last\": %ld, \"expected\": %ld}",
                    sep, s.name.c_str(), s.stats.beats, s.stats.first, s.stats.last, s.expect);
        sep = ", ";
        if (s.file) std::fclose(s.file);
    }
    std::printf("}");
    for (auto& s : statuses) {
        s.value(s.word);
        std::printf(", \"%s\": \"", s.name.c_str());
        for (int d = (int)s.word.size() - 1; d >= 0; --d) std::printf("%08x", s.word[d]);
        std::printf("\"");
    }
    std::printf("}\n");
    top->final();
    return done ? 0 : 3;
}
