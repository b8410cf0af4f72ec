// Replays one layer on a generated conv engine from `sfc-hls vectors --engine` files.
//
// No Python in the loop: every input stream offers the beats of its $readmemh
// file in order (i_cfg, i_chan, i_weight and i_act all at once, each on its
// own; valid stays up until the beat is taken), and every o_out beat is
// compared with o_out.hex under o_out.mask.hex: ((actual ^ expected) & mask)
// must be zero (X or Z bits on a masked bit fail).  The engine emits its
// beats in a fixed order (docs/integration.md, "Replaying a layer without
// Python"), so beat i is compared with line i.
//
// The directory's replay_params.svh names the top module and gives the
// widths and beat counts (`REPLAY_TOP, `REPLAY_<PORT>_BITS/_BEATS, ...).
//
//   iverilog -g2012 -I VEC -o replay.vvp VEC/replay_tb.sv ENGINE/NAME.v
//   vvp -n replay.vvp +vectors=VEC [+seed=S] [+stall=PERCENT] [+max_cycles=N]
//
// +stall=P idles each input's valid and the output's ready on about P% of
// the cycles (seeded per stream by +seed).  The run ends when every input
// beat is taken and every expected output beat has arrived, then idles 64
// cycles more (an extra output beat fails); the status port must then show
// no error and not busy.  Prints one line "PASS: ..." or "FAIL: ..." and
// calls $finish; +max_cycles (default `REPLAY_MAX_CYCLES) cycles without
// completion is a FAIL (timeout).
`timescale 1ns / 1ps
`include "replay_params.svh"

// A 32-bit xorshift step (never zero from a non-zero state).
function automatic logic [31:0] replay_xorshift(input logic [31:0] s);
  logic [31:0] x;
  x = s;
  x = x ^ (x << 13);
  x = x ^ (x >> 17);
  x = x ^ (x << 5);
  return x;
endfunction

// The beats of NAME.hex on one valid/ready stream, in order.
module replay_source #(
    parameter int W = 1,
    parameter int N = 1,
    parameter NAME = "stream",
    parameter int ID = 1
) (
    input logic clk,
    input logic rst,
    input logic [31:0] seed,
    input int stall,
    output logic valid,
    input logic ready,
    output logic [W-1:0] payload,
    output logic done
);
  localparam int DEPTH = N > 0 ? N : 1;
  logic [W-1:0] mem[0:DEPTH-1];
  int next;
  logic [31:0] rng;
  string dir;
  wire pause = (rng % 100) < stall;

  initial begin
    if (!$value$plusargs("vectors=%s", dir)) dir = ".";
    $readmemh($sformatf("%s/%s.hex", dir, NAME), mem);
    if (N > 0 && ^mem[N-1] === 1'bx) begin
      $display("FAIL: %s/%s.hex holds fewer than %0d beats of %0d bits", dir, NAME, N, W);
      $finish;
    end
  end

  assign payload = next < N ? mem[next] : '0;
  assign done = next >= N;

  always_ff @(posedge clk) begin
    if (rst) begin
      valid <= 1'b0;
      next <= 0;
      rng <= (seed ^ (32'h9E3779B9 * ID)) | 32'h1;
    end else begin
      rng <= replay_xorshift(rng);
      if (valid && ready) begin
        next <= next + 1;
        valid <= (next + 1 < N) && !pause;
      end else if (!valid) begin
        valid <= (next < N) && !pause;
      end
    end
  end
endmodule

// Takes o_out beats and checks beat i against line i of o_out.hex under o_out.mask.hex.
module replay_sink #(
    parameter int W = 1,
    parameter int N = 1
) (
    input logic clk,
    input logic rst,
    input logic [31:0] seed,
    input int stall,
    input logic valid,
    output logic ready,
    input logic [W-1:0] payload,
    output int count,
    output int errors
);
  localparam int DEPTH = N > 0 ? N : 1;
  logic [W-1:0] expected[0:DEPTH-1];
  logic [W-1:0] mask[0:DEPTH-1];
  logic [31:0] rng;
  string dir;

  initial begin
    if (!$value$plusargs("vectors=%s", dir)) dir = ".";
    $readmemh($sformatf("%s/o_out.hex", dir), expected);
    $readmemh($sformatf("%s/o_out.mask.hex", dir), mask);
    if (N > 0 && (^expected[N-1] === 1'bx || ^mask[N-1] === 1'bx)) begin
      $display("FAIL: %s/o_out.hex or o_out.mask.hex holds fewer than %0d beats", dir, N);
      $finish;
    end
  end

  always_ff @(posedge clk) begin
    if (rst) begin
      ready <= 1'b0;
      count <= 0;
      errors <= 0;
      rng <= (seed ^ 32'h7F4A7C15) | 32'h1;
    end else begin
      rng <= replay_xorshift(rng);
      ready <= (rng % 100) >= stall;
      if (valid && ready) begin
        count <= count + 1;
        if (count >= N) begin
          errors <= errors + 1;
          $display("FAIL: o_out beat %0d is beyond the %0d expected: %h", count, N, payload);
        end else if (((payload ^ expected[count]) & mask[count]) !== '0) begin
          errors <= errors + 1;
          if (errors < 10)
            $display("mismatch at o_out beat %0d:\n  got      %h\n  expected %h\n  mask     %h",
                     count, payload, expected[count], mask[count]);
        end
      end
    end
  end
endmodule

module replay_tb;
  logic clk = 1'b0;
  logic rst = 1'b1;
  always #5 clk = ~clk;

  logic [31:0] seed;
  int stall;
  int max_cycles;
  int cycle;

  logic cfg_valid, cfg_ready, chan_valid, chan_ready, weight_valid, weight_ready;
  logic act_valid, act_ready, out_valid, out_ready;
  logic [`REPLAY_CFG_BITS-1:0] cfg_payload;
  logic [`REPLAY_CHAN_BITS-1:0] chan_payload;
  logic [`REPLAY_WEIGHT_BITS-1:0] weight_payload;
  logic [`REPLAY_ACT_BITS-1:0] act_payload;
  logic [`REPLAY_OUT_BITS-1:0] out_payload;
  logic [`REPLAY_STATUS_BITS-1:0] status;
  logic cfg_done, chan_done, weight_done, act_done;
  int out_count, out_errors;

  `REPLAY_TOP dut (
      .clk(clk),
      .rst(rst),
      .i_cfg__valid(cfg_valid),
      .i_cfg__ready(cfg_ready),
      .i_cfg__payload(cfg_payload),
      .i_chan__valid(chan_valid),
      .i_chan__ready(chan_ready),
      .i_chan__payload(chan_payload),
      .i_weight__valid(weight_valid),
      .i_weight__ready(weight_ready),
      .i_weight__payload(weight_payload),
      .i_act__valid(act_valid),
      .i_act__ready(act_ready),
      .i_act__payload(act_payload),
      .o_out__valid(out_valid),
      .o_out__ready(out_ready),
      .o_out__payload(out_payload),
      .status(status)
  );

  replay_source #(.W(`REPLAY_CFG_BITS), .N(`REPLAY_CFG_BEATS), .NAME("i_cfg"), .ID(1)) cfg_src (
      clk, rst, seed, stall, cfg_valid, cfg_ready, cfg_payload, cfg_done);
  replay_source #(.W(`REPLAY_CHAN_BITS), .N(`REPLAY_CHAN_BEATS), .NAME("i_chan"), .ID(2)) chan_src (
      clk, rst, seed, stall, chan_valid, chan_ready, chan_payload, chan_done);
  replay_source #(.W(`REPLAY_WEIGHT_BITS), .N(`REPLAY_WEIGHT_BEATS), .NAME("i_weight"), .ID(3))
      weight_src (clk, rst, seed, stall, weight_valid, weight_ready, weight_payload, weight_done);
  replay_source #(.W(`REPLAY_ACT_BITS), .N(`REPLAY_ACT_BEATS), .NAME("i_act"), .ID(4)) act_src (
      clk, rst, seed, stall, act_valid, act_ready, act_payload, act_done);
  replay_sink #(.W(`REPLAY_OUT_BITS), .N(`REPLAY_OUT_BEATS)) out_sink (
      clk, rst, seed, stall, out_valid, out_ready, out_payload, out_count, out_errors);

  wire inputs_done = cfg_done && chan_done && weight_done && act_done;
  wire [`REPLAY_STATUS_BITS-1:0] status_errors = `REPLAY_STATUS_ERRORS;

  initial begin
    if (!$value$plusargs("seed=%d", seed)) seed = 1;
    if (!$value$plusargs("stall=%d", stall)) stall = 0;
    if (!$value$plusargs("max_cycles=%d", max_cycles)) max_cycles = `REPLAY_MAX_CYCLES;
    repeat (4) @(posedge clk);
    rst <= 1'b0;
    cycle = 0;
    while (!(inputs_done && out_count >= `REPLAY_OUT_BEATS) && cycle < max_cycles) begin
      @(posedge clk);
      cycle = cycle + 1;
    end
    if (cycle >= max_cycles) begin
      $display("FAIL: timeout after %0d cycles: %0d of %0d o_out beats, inputs done %b%b%b%b",
               cycle, out_count, `REPLAY_OUT_BEATS, cfg_done, chan_done, weight_done, act_done);
      $finish;
    end
    repeat (64) @(posedge clk);  // settle; an extra o_out beat counts as an error
    if (out_errors != 0)
      $display("FAIL: %0d of %0d o_out beats differ (%0d cycles)", out_errors, out_count, cycle);
    else if (out_count != `REPLAY_OUT_BEATS)
      $display("FAIL: %0d o_out beats, expected %0d", out_count, `REPLAY_OUT_BEATS);
    else if ((status & status_errors) !== '0 || status[`REPLAY_STATUS_BUSY] !== 1'b0)
      $display("FAIL: status %h after the layer (error bits %h, busy bit %0d)", status,
               status_errors, `REPLAY_STATUS_BUSY);
    else
      $display("PASS: %0d o_out beats bit-exact in %0d cycles (inputs %0d/%0d/%0d/%0d beats)",
               out_count, cycle, `REPLAY_CFG_BEATS, `REPLAY_CHAN_BEATS, `REPLAY_WEIGHT_BEATS,
               `REPLAY_ACT_BEATS);
    $finish;
  end
endmodule
