// Simulation model of the Lattice ECP5 MULT18X18D subset that sfc-hls instantiates
// (hw/multiplier.py, EngineConfig.target = "ecp5"), for Verilator and Icarus.
//
// Written from the ECP5 sysDSP usage guide (Lattice FPGA-TN-02205): an 18x18
// multiplier, P = A * B (two's complement where SIGNEDA / SIGNEDB are high), with
// optional input registers on A and B and an optional output register on P.  This
// model covers the registers on CLK0 with clock enable CE0 and synchronous reset
// RST0 (RESETMODE "SYNC"), no pipeline register, no cascade or shift inputs
// (SOURCEA = SOURCEB = 0); any other setting stops the simulation with an error.
// Registers start at zero (the device's global set/reset).  Yosys' ECP5 library
// ships only a black box for MULT18X18D, hence this model.
`default_nettype none
module MULT18X18D #(
    parameter REG_INPUTA_CLK = "NONE",
    parameter REG_INPUTA_CE = "CE0",
    parameter REG_INPUTA_RST = "RST0",
    parameter REG_INPUTB_CLK = "NONE",
    parameter REG_INPUTB_CE = "CE0",
    parameter REG_INPUTB_RST = "RST0",
    parameter REG_INPUTC_CLK = "NONE",
    parameter REG_PIPELINE_CLK = "NONE",
    parameter REG_OUTPUT_CLK = "NONE",
    parameter REG_OUTPUT_CE = "CE0",
    parameter REG_OUTPUT_RST = "RST0",
    parameter RESETMODE = "SYNC"
) (
    input wire A0, A1, A2, A3, A4, A5, A6, A7, A8, A9, A10, A11, A12, A13, A14, A15, A16, A17,
    input wire B0, B1, B2, B3, B4, B5, B6, B7, B8, B9, B10, B11, B12, B13, B14, B15, B16, B17,
    input wire SIGNEDA, SIGNEDB, SOURCEA, SOURCEB,
    input wire CLK0, CE0, RST0,
    output wire P0, P1, P2, P3, P4, P5, P6, P7, P8, P9, P10, P11, P12, P13, P14, P15, P16, P17,
    output wire P18, P19, P20, P21, P22, P23, P24, P25, P26, P27, P28, P29, P30, P31, P32, P33,
    output wire P34, P35
);
    wire [17:0] a = {A17, A16, A15, A14, A13, A12, A11, A10, A9, A8, A7, A6, A5, A4, A3, A2, A1, A0};
    wire [17:0] b = {B17, B16, B15, B14, B13, B12, B11, B10, B9, B8, B7, B6, B5, B4, B3, B2, B1, B0};

    localparam bit IN_A = REG_INPUTA_CLK == "CLK0";
    localparam bit IN_B = REG_INPUTB_CLK == "CLK0";
    localparam bit OUT_P = REG_OUTPUT_CLK == "CLK0";

    initial begin
        if ((REG_INPUTA_CLK != "NONE" && !IN_A) || (REG_INPUTB_CLK != "NONE" && !IN_B)
                || (REG_OUTPUT_CLK != "NONE" && !OUT_P) || REG_INPUTC_CLK != "NONE"
                || REG_PIPELINE_CLK != "NONE" || REG_INPUTA_CE != "CE0" || REG_INPUTB_CE != "CE0"
                || REG_OUTPUT_CE != "CE0" || REG_INPUTA_RST != "RST0" || REG_INPUTB_RST != "RST0"
                || REG_OUTPUT_RST != "RST0" || RESETMODE != "SYNC") begin
            $display("MULT18X18D model: unsupported parameters (sim/ecp5_cells.v covers CLK0/CE0/RST0, SYNC)");
            $finish;
        end
    end

    reg [17:0] a_r = 18'd0, b_r = 18'd0;
    reg [35:0] p_r = 36'd0;
    reg sa_r = 1'b0, sb_r = 1'b0;
    wire [17:0] a_in = IN_A ? a_r : a;
    wire [17:0] b_in = IN_B ? b_r : b;
    wire sa = IN_A ? sa_r : SIGNEDA;
    wire sb = IN_B ? sb_r : SIGNEDB;
    wire signed [18:0] a_ext = {sa & a_in[17], a_in};
    wire signed [18:0] b_ext = {sb & b_in[17], b_in};
    wire signed [37:0] product = a_ext * b_ext;
    wire [35:0] p = OUT_P ? p_r : product[35:0];

    always @(posedge CLK0) begin
        if (SOURCEA || SOURCEB) begin
            $display("MULT18X18D model: SOURCEA/SOURCEB (shift inputs) are not modelled");
            $finish;
        end
        if (RST0) begin
            a_r <= 18'd0; b_r <= 18'd0; sa_r <= 1'b0; sb_r <= 1'b0; p_r <= 36'd0;
        end else if (CE0) begin
            a_r <= a; b_r <= b; sa_r <= SIGNEDA; sb_r <= SIGNEDB; p_r <= product[35:0];
        end
    end

    assign {P35, P34, P33, P32, P31, P30, P29, P28, P27, P26, P25, P24, P23, P22, P21, P20, P19,
            P18, P17, P16, P15, P14, P13, P12, P11, P10, P9, P8, P7, P6, P5, P4, P3, P2, P1,
            P0} = p;
endmodule
`default_nettype wire


// Simulation model of the Lattice ECP5 DP16KD subset that sfc-hls instantiates
// (hw/block_ram.py, EngineConfig.target = "ecp5"): one write port (A) and one read
// port (B) of the same width, 36 (pseudo dual port: the word on DIA/DIB and
// DOA/DOB), 18, 9, 4, 2 or 1 bits, the address in AD[13:low] (low = 5, 4, 3, 2, 1, 0);
// the write takes every byte (the byte enables of the 18- and 36-bit modes high).
// Written from the ECP5 memory usage guide (Lattice FPGA-TN-02204): CEB clocks the
// read into the read register, OCEB the output register (REGMODE_B "OUTREG").  Any
// other setting (a write on port B, NOREG reads, chip selects, resets) stops the
// simulation with an error.  Registers start at zero.
module DP16KD #(
    parameter DATA_WIDTH_A = 18,
    parameter DATA_WIDTH_B = 18,
    parameter REGMODE_A = "NOREG",
    parameter REGMODE_B = "NOREG",
    parameter RESETMODE = "SYNC",
    parameter ASYNC_RESET_RELEASE = "SYNC",
    parameter CSDECODE_A = "0b000",
    parameter CSDECODE_B = "0b000",
    parameter WRITEMODE_A = "NORMAL",
    parameter WRITEMODE_B = "NORMAL",
    parameter GSR = "ENABLED"
) (
    input wire DIA0, DIA1, DIA2, DIA3, DIA4, DIA5, DIA6, DIA7, DIA8, DIA9, DIA10, DIA11, DIA12, DIA13, DIA14, DIA15, DIA16, DIA17,
    input wire ADA0, ADA1, ADA2, ADA3, ADA4, ADA5, ADA6, ADA7, ADA8, ADA9, ADA10, ADA11, ADA12, ADA13,
    input wire CEA, OCEA, CLKA, WEA, RSTA, CSA0, CSA1, CSA2,
    output wire DOA0, DOA1, DOA2, DOA3, DOA4, DOA5, DOA6, DOA7, DOA8, DOA9, DOA10, DOA11, DOA12, DOA13, DOA14, DOA15, DOA16, DOA17,
    input wire DIB0, DIB1, DIB2, DIB3, DIB4, DIB5, DIB6, DIB7, DIB8, DIB9, DIB10, DIB11, DIB12, DIB13, DIB14, DIB15, DIB16, DIB17,
    input wire ADB0, ADB1, ADB2, ADB3, ADB4, ADB5, ADB6, ADB7, ADB8, ADB9, ADB10, ADB11, ADB12, ADB13,
    input wire CEB, OCEB, CLKB, WEB, RSTB, CSB0, CSB1, CSB2,
    output wire DOB0, DOB1, DOB2, DOB3, DOB4, DOB5, DOB6, DOB7, DOB8, DOB9, DOB10, DOB11, DOB12, DOB13, DOB14, DOB15, DOB16, DOB17
);
    localparam integer W = DATA_WIDTH_B;
    localparam integer LOW = W == 36 ? 5 : W == 18 ? 4 : W == 9 ? 3 : W == 4 ? 2 : W == 2 ? 1 : 0;
    wire [17:0] dia = {DIA17, DIA16, DIA15, DIA14, DIA13, DIA12, DIA11, DIA10, DIA9, DIA8, DIA7, DIA6, DIA5, DIA4, DIA3, DIA2, DIA1, DIA0};
    wire [17:0] dib = {DIB17, DIB16, DIB15, DIB14, DIB13, DIB12, DIB11, DIB10, DIB9, DIB8, DIB7, DIB6, DIB5, DIB4, DIB3, DIB2, DIB1, DIB0};
    wire [13:0] ada = {ADA13, ADA12, ADA11, ADA10, ADA9, ADA8, ADA7, ADA6, ADA5, ADA4, ADA3, ADA2, ADA1, ADA0};
    wire [13:0] adb = {ADB13, ADB12, ADB11, ADB10, ADB9, ADB8, ADB7, ADB6, ADB5, ADB4, ADB3, ADB2, ADB1, ADB0};
    wire [35:0] din = {dib, dia};

    // Checked at the first read clock, not in an initial block: a simulator that
    // elaborates the uninstantiated model as a root (Icarus without -s) must not stop.
    wire supported = DATA_WIDTH_A == DATA_WIDTH_B && (W == 36 || W == 18 || W == 9 || W == 4
            || W == 2 || W == 1) && REGMODE_B == "OUTREG" && (W != 36 || REGMODE_A == "OUTREG")
            && RESETMODE == "SYNC" && CSDECODE_A == "0b000" && CSDECODE_B == "0b000";

    reg [35:0] mem [0:16383];
    reg [35:0] read_r = 36'd0, out_r = 36'd0;
    wire [13:0] w_index = ada >> LOW;
    wire [13:0] r_index = adb >> LOW;

    always @(posedge CLKA) begin
        if (WEB || RSTA || RSTB || CSA0 || CSA1 || CSA2 || CSB0 || CSB1 || CSB2 ||
                (W == 36 && ada[3:0] != 4'hf) || (W == 18 && ada[1:0] != 2'h3)) begin
            $display("DP16KD model: only port A writes of whole words are modelled");
            $finish;
        end
        if (CEA && WEA) mem[w_index] <= W == 36 ? din : {18'd0, dia};
    end
    always @(posedge CLKB) begin
        if (!supported) begin
            $display("DP16KD model: unsupported parameters (sim/ecp5_cells.v covers a port A write, a port B OUTREG read, equal widths)");
            $finish;
        end
        if (CEB) read_r <= mem[r_index];
        if (OCEB) out_r <= read_r;
    end
    wire [35:0] mask = W == 36 ? ~36'd0 : (36'd1 << W) - 36'd1;
    wire [35:0] dout = out_r & mask;
    assign {DOA17, DOA16, DOA15, DOA14, DOA13, DOA12, DOA11, DOA10, DOA9, DOA8, DOA7, DOA6, DOA5, DOA4, DOA3, DOA2, DOA1, DOA0} = W == 36 ? dout[17:0] : 18'd0;
    assign {DOB17, DOB16, DOB15, DOB14, DOB13, DOB12, DOB11, DOB10, DOB9, DOB8, DOB7, DOB6, DOB5, DOB4, DOB3, DOB2, DOB1, DOB0} = W == 36 ? dout[35:18] : dout[17:0];
endmodule
