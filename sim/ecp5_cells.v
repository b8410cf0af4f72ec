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
