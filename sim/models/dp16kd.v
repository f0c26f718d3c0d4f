// Behavioural model of the Lattice ECP5 DP16KD block RAM for post-synthesis simulation with Icarus
// (sim/netlist_sim.py; yosys ships DP16KD only as a blackbox). Pins and parameters as yosys' ECP5
// cells (share/ecp5/cells_sim.v) and its mapping (share/lattice/brams_map_16kd.v) use them.
//
// Supported: DATA_WIDTH 1/2/4/9/18 per port (true dual port); REGMODE "NOREG" (DO = the read latch)
// and "OUTREG" (DO = a register loaded from the latch at a CLK edge with OCE); WRITEMODE "NORMAL"
// (latch keeps its value on a write), "WRITETHROUGH" (latch = new word), "READBEFOREWRITE" (latch =
// old word); RESETMODE "SYNC": RST at an edge clears the latch and the output register (not gated
// by CE/OCE) and blocks the port's write ("ASYNC": also cleared as RST rises); CSDECODE "0bXYZ"
// chip selects; INITVAL_00..3F in yosys' layout (row r = INITVAL_(r/16) bits [(r%16)*20 +: 18];
// checked for x18 ROMs only). x18 writes use ADx1/ADx0 as byte enables.
// Word bits sit in rows of two 9-bit halves (bit_index below; narrow widths skip the parity bits).
// Both ports must share one clock (every configuration yosys or hdl/primitives.py builds here).
// A read of a word the other port writes at the same edge returns X: the designs must not use it
// (hdl/primitives.RegisteredReadMemory documents that collision as excluded by construction).
// Anything else (inverted clocks, other widths) stops the simulation.
`timescale 1ns/1ps
module DP16KD(DIA0, DIA1, DIA2, DIA3, DIA4, DIA5, DIA6, DIA7, DIA8, DIA9, DIA10, DIA11, DIA12, DIA13, DIA14, DIA15, DIA16, DIA17, ADA0, ADA1, ADA2, ADA3, ADA4, ADA5, ADA6, ADA7, ADA8, ADA9, ADA10, ADA11, ADA12, ADA13, CEA, OCEA, CLKA, WEA, RSTA, CSA2, CSA1, CSA0, DIB0, DIB1, DIB2, DIB3, DIB4, DIB5, DIB6, DIB7, DIB8, DIB9, DIB10, DIB11, DIB12, DIB13, DIB14, DIB15, DIB16, DIB17, ADB0, ADB1, ADB2, ADB3, ADB4, ADB5, ADB6, ADB7, ADB8, ADB9, ADB10, ADB11, ADB12, ADB13, CEB, OCEB, CLKB, WEB, RSTB, CSB2, CSB1, CSB0, DOA0, DOA1, DOA2, DOA3, DOA4, DOA5, DOA6, DOA7, DOA8, DOA9, DOA10, DOA11, DOA12, DOA13, DOA14, DOA15, DOA16, DOA17, DOB0, DOB1, DOB2, DOB3, DOB4, DOB5, DOB6, DOB7, DOB8, DOB9, DOB10, DOB11, DOB12, DOB13, DOB14, DOB15, DOB16, DOB17);
  input DIA0, DIA1, DIA2, DIA3, DIA4, DIA5, DIA6, DIA7, DIA8, DIA9, DIA10, DIA11, DIA12, DIA13, DIA14, DIA15, DIA16, DIA17, ADA0, ADA1, ADA2, ADA3, ADA4, ADA5, ADA6, ADA7, ADA8, ADA9, ADA10, ADA11, ADA12, ADA13, CEA, OCEA, CLKA, WEA, RSTA, CSA2, CSA1, CSA0;
  input DIB0, DIB1, DIB2, DIB3, DIB4, DIB5, DIB6, DIB7, DIB8, DIB9, DIB10, DIB11, DIB12, DIB13, DIB14, DIB15, DIB16, DIB17, ADB0, ADB1, ADB2, ADB3, ADB4, ADB5, ADB6, ADB7, ADB8, ADB9, ADB10, ADB11, ADB12, ADB13, CEB, OCEB, CLKB, WEB, RSTB, CSB2, CSB1, CSB0;
  output DOA0, DOA1, DOA2, DOA3, DOA4, DOA5, DOA6, DOA7, DOA8, DOA9, DOA10, DOA11, DOA12, DOA13, DOA14, DOA15, DOA16, DOA17;
  output DOB0, DOB1, DOB2, DOB3, DOB4, DOB5, DOB6, DOB7, DOB8, DOB9, DOB10, DOB11, DOB12, DOB13, DOB14, DOB15, DOB16, DOB17;

  parameter DATA_WIDTH_A = 18;
  parameter DATA_WIDTH_B = 18;
  parameter REGMODE_A = "NOREG";
  parameter REGMODE_B = "NOREG";
  parameter RESETMODE = "SYNC";
  parameter ASYNC_RESET_RELEASE = "SYNC";
  parameter CSDECODE_A = "0b000";
  parameter CSDECODE_B = "0b000";
  parameter WRITEMODE_A = "NORMAL";
  parameter WRITEMODE_B = "NORMAL";
  parameter GSR = "ENABLED";
  parameter DIA0MUX = "DIA0";
  parameter DIA1MUX = "DIA1";
  parameter DIA2MUX = "DIA2";
  parameter DIA3MUX = "DIA3";
  parameter DIA4MUX = "DIA4";
  parameter DIA5MUX = "DIA5";
  parameter DIA6MUX = "DIA6";
  parameter DIA7MUX = "DIA7";
  parameter DIA8MUX = "DIA8";
  parameter DIA9MUX = "DIA9";
  parameter DIA10MUX = "DIA10";
  parameter DIA11MUX = "DIA11";
  parameter DIA12MUX = "DIA12";
  parameter DIA13MUX = "DIA13";
  parameter DIA14MUX = "DIA14";
  parameter DIA15MUX = "DIA15";
  parameter DIA16MUX = "DIA16";
  parameter DIA17MUX = "DIA17";
  parameter ADA0MUX = "ADA0";
  parameter ADA1MUX = "ADA1";
  parameter ADA2MUX = "ADA2";
  parameter ADA3MUX = "ADA3";
  parameter ADA4MUX = "ADA4";
  parameter ADA5MUX = "ADA5";
  parameter ADA6MUX = "ADA6";
  parameter ADA7MUX = "ADA7";
  parameter ADA8MUX = "ADA8";
  parameter ADA9MUX = "ADA9";
  parameter ADA10MUX = "ADA10";
  parameter ADA11MUX = "ADA11";
  parameter ADA12MUX = "ADA12";
  parameter ADA13MUX = "ADA13";
  parameter CEAMUX = "CEA";
  parameter OCEAMUX = "OCEA";
  parameter CLKAMUX = "CLKA";
  parameter WEAMUX = "WEA";
  parameter RSTAMUX = "RSTA";
  parameter CSA2MUX = "CSA2";
  parameter CSA1MUX = "CSA1";
  parameter CSA0MUX = "CSA0";
  parameter DOA0MUX = "DOA0";
  parameter DOA1MUX = "DOA1";
  parameter DOA2MUX = "DOA2";
  parameter DOA3MUX = "DOA3";
  parameter DOA4MUX = "DOA4";
  parameter DOA5MUX = "DOA5";
  parameter DOA6MUX = "DOA6";
  parameter DOA7MUX = "DOA7";
  parameter DOA8MUX = "DOA8";
  parameter DOA9MUX = "DOA9";
  parameter DOA10MUX = "DOA10";
  parameter DOA11MUX = "DOA11";
  parameter DOA12MUX = "DOA12";
  parameter DOA13MUX = "DOA13";
  parameter DOA14MUX = "DOA14";
  parameter DOA15MUX = "DOA15";
  parameter DOA16MUX = "DOA16";
  parameter DOA17MUX = "DOA17";
  parameter DIB0MUX = "DIB0";
  parameter DIB1MUX = "DIB1";
  parameter DIB2MUX = "DIB2";
  parameter DIB3MUX = "DIB3";
  parameter DIB4MUX = "DIB4";
  parameter DIB5MUX = "DIB5";
  parameter DIB6MUX = "DIB6";
  parameter DIB7MUX = "DIB7";
  parameter DIB8MUX = "DIB8";
  parameter DIB9MUX = "DIB9";
  parameter DIB10MUX = "DIB10";
  parameter DIB11MUX = "DIB11";
  parameter DIB12MUX = "DIB12";
  parameter DIB13MUX = "DIB13";
  parameter DIB14MUX = "DIB14";
  parameter DIB15MUX = "DIB15";
  parameter DIB16MUX = "DIB16";
  parameter DIB17MUX = "DIB17";
  parameter ADB0MUX = "ADB0";
  parameter ADB1MUX = "ADB1";
  parameter ADB2MUX = "ADB2";
  parameter ADB3MUX = "ADB3";
  parameter ADB4MUX = "ADB4";
  parameter ADB5MUX = "ADB5";
  parameter ADB6MUX = "ADB6";
  parameter ADB7MUX = "ADB7";
  parameter ADB8MUX = "ADB8";
  parameter ADB9MUX = "ADB9";
  parameter ADB10MUX = "ADB10";
  parameter ADB11MUX = "ADB11";
  parameter ADB12MUX = "ADB12";
  parameter ADB13MUX = "ADB13";
  parameter CEBMUX = "CEB";
  parameter OCEBMUX = "OCEB";
  parameter CLKBMUX = "CLKB";
  parameter WEBMUX = "WEB";
  parameter RSTBMUX = "RSTB";
  parameter CSB2MUX = "CSB2";
  parameter CSB1MUX = "CSB1";
  parameter CSB0MUX = "CSB0";
  parameter DOB0MUX = "DOB0";
  parameter DOB1MUX = "DOB1";
  parameter DOB2MUX = "DOB2";
  parameter DOB3MUX = "DOB3";
  parameter DOB4MUX = "DOB4";
  parameter DOB5MUX = "DOB5";
  parameter DOB6MUX = "DOB6";
  parameter DOB7MUX = "DOB7";
  parameter DOB8MUX = "DOB8";
  parameter DOB9MUX = "DOB9";
  parameter DOB10MUX = "DOB10";
  parameter DOB11MUX = "DOB11";
  parameter DOB12MUX = "DOB12";
  parameter DOB13MUX = "DOB13";
  parameter DOB14MUX = "DOB14";
  parameter DOB15MUX = "DOB15";
  parameter DOB16MUX = "DOB16";
  parameter DOB17MUX = "DOB17";
  parameter INITVAL_00 = 320'h0;
  parameter INITVAL_01 = 320'h0;
  parameter INITVAL_02 = 320'h0;
  parameter INITVAL_03 = 320'h0;
  parameter INITVAL_04 = 320'h0;
  parameter INITVAL_05 = 320'h0;
  parameter INITVAL_06 = 320'h0;
  parameter INITVAL_07 = 320'h0;
  parameter INITVAL_08 = 320'h0;
  parameter INITVAL_09 = 320'h0;
  parameter INITVAL_0A = 320'h0;
  parameter INITVAL_0B = 320'h0;
  parameter INITVAL_0C = 320'h0;
  parameter INITVAL_0D = 320'h0;
  parameter INITVAL_0E = 320'h0;
  parameter INITVAL_0F = 320'h0;
  parameter INITVAL_10 = 320'h0;
  parameter INITVAL_11 = 320'h0;
  parameter INITVAL_12 = 320'h0;
  parameter INITVAL_13 = 320'h0;
  parameter INITVAL_14 = 320'h0;
  parameter INITVAL_15 = 320'h0;
  parameter INITVAL_16 = 320'h0;
  parameter INITVAL_17 = 320'h0;
  parameter INITVAL_18 = 320'h0;
  parameter INITVAL_19 = 320'h0;
  parameter INITVAL_1A = 320'h0;
  parameter INITVAL_1B = 320'h0;
  parameter INITVAL_1C = 320'h0;
  parameter INITVAL_1D = 320'h0;
  parameter INITVAL_1E = 320'h0;
  parameter INITVAL_1F = 320'h0;
  parameter INITVAL_20 = 320'h0;
  parameter INITVAL_21 = 320'h0;
  parameter INITVAL_22 = 320'h0;
  parameter INITVAL_23 = 320'h0;
  parameter INITVAL_24 = 320'h0;
  parameter INITVAL_25 = 320'h0;
  parameter INITVAL_26 = 320'h0;
  parameter INITVAL_27 = 320'h0;
  parameter INITVAL_28 = 320'h0;
  parameter INITVAL_29 = 320'h0;
  parameter INITVAL_2A = 320'h0;
  parameter INITVAL_2B = 320'h0;
  parameter INITVAL_2C = 320'h0;
  parameter INITVAL_2D = 320'h0;
  parameter INITVAL_2E = 320'h0;
  parameter INITVAL_2F = 320'h0;
  parameter INITVAL_30 = 320'h0;
  parameter INITVAL_31 = 320'h0;
  parameter INITVAL_32 = 320'h0;
  parameter INITVAL_33 = 320'h0;
  parameter INITVAL_34 = 320'h0;
  parameter INITVAL_35 = 320'h0;
  parameter INITVAL_36 = 320'h0;
  parameter INITVAL_37 = 320'h0;
  parameter INITVAL_38 = 320'h0;
  parameter INITVAL_39 = 320'h0;
  parameter INITVAL_3A = 320'h0;
  parameter INITVAL_3B = 320'h0;
  parameter INITVAL_3C = 320'h0;
  parameter INITVAL_3D = 320'h0;
  parameter INITVAL_3E = 320'h0;
  parameter INITVAL_3F = 320'h0;

  // 1024 rows of 18 bits, stored bit by bit (bit i of row r at r*18+i)
  reg mem [0:18431];
  reg [17:0] latch_a, latch_b, oreg_a, oreg_b;
  wire [17:0] di_a = {DIA17, DIA16, DIA15, DIA14, DIA13, DIA12, DIA11, DIA10, DIA9, DIA8, DIA7, DIA6, DIA5, DIA4, DIA3, DIA2, DIA1, DIA0};
  wire [17:0] di_b = {DIB17, DIB16, DIB15, DIB14, DIB13, DIB12, DIB11, DIB10, DIB9, DIB8, DIB7, DIB6, DIB5, DIB4, DIB3, DIB2, DIB1, DIB0};
  wire [13:0] ad_a = {ADA13, ADA12, ADA11, ADA10, ADA9, ADA8, ADA7, ADA6, ADA5, ADA4, ADA3, ADA2, ADA1, ADA0};
  wire [13:0] ad_b = {ADB13, ADB12, ADB11, ADB10, ADB9, ADB8, ADB7, ADB6, ADB5, ADB4, ADB3, ADB2, ADB1, ADB0};
  wire [17:0] do_a = (REGMODE_A == "OUTREG") ? oreg_a : latch_a;
  wire [17:0] do_b = (REGMODE_B == "OUTREG") ? oreg_b : latch_b;
  assign DOA0 = do_a[0];
  assign DOA1 = do_a[1];
  assign DOA2 = do_a[2];
  assign DOA3 = do_a[3];
  assign DOA4 = do_a[4];
  assign DOA5 = do_a[5];
  assign DOA6 = do_a[6];
  assign DOA7 = do_a[7];
  assign DOA8 = do_a[8];
  assign DOA9 = do_a[9];
  assign DOA10 = do_a[10];
  assign DOA11 = do_a[11];
  assign DOA12 = do_a[12];
  assign DOA13 = do_a[13];
  assign DOA14 = do_a[14];
  assign DOA15 = do_a[15];
  assign DOA16 = do_a[16];
  assign DOA17 = do_a[17];
  assign DOB0 = do_b[0];
  assign DOB1 = do_b[1];
  assign DOB2 = do_b[2];
  assign DOB3 = do_b[3];
  assign DOB4 = do_b[4];
  assign DOB5 = do_b[5];
  assign DOB6 = do_b[6];
  assign DOB7 = do_b[7];
  assign DOB8 = do_b[8];
  assign DOB9 = do_b[9];
  assign DOB10 = do_b[10];
  assign DOB11 = do_b[11];
  assign DOB12 = do_b[12];
  assign DOB13 = do_b[13];
  assign DOB14 = do_b[14];
  assign DOB15 = do_b[15];
  assign DOB16 = do_b[16];
  assign DOB17 = do_b[17];

  function integer words_shift(input integer width);  // address bits below the word address
    words_shift = width == 18 ? 4 : width == 9 ? 3 : width == 4 ? 2 : width == 2 ? 1 : 0;
  endfunction

  // storage index of bit b of the word at address ad (ad's low words_shift bits ignored): rows of
  // two 9-bit halves; x9 = one half, x4/x2/x1 = bits of a half below its parity bit (bit 8)
  function integer bit_index(input integer width, input [13:0] ad, input integer b);
    integer row, half, pos;
    begin
      row = ad >> 4;
      if (width == 18) begin half = b / 9; pos = b % 9; end
      else if (width == 9) begin half = ad[3]; pos = b; end
      else if (width == 4) begin half = ad[3]; pos = ad[2] * 4 + b; end
      else if (width == 2) begin half = ad[3]; pos = ad[2:1] * 2 + b; end
      else begin half = ad[3]; pos = ad[2:0] + b; end
      bit_index = row * 18 + half * 9 + pos;
    end
  endfunction

  function [2:0] cs_decode(input [8*5-1:0] s);  // "0bXYZ" -> 3'bXYZ
    cs_decode = {s[23:16] == "1", s[15:8] == "1", s[7:0] == "1"};
  endfunction

  task load_initval(input integer idx, input [319:0] value);
    integer i, b;
    for (i = 0; i < 16; i = i + 1)
      for (b = 0; b < 18; b = b + 1)
        mem[(idx * 16 + i) * 18 + b] = value[i * 20 + b];
  endtask

  integer k;
  initial begin
    if ((RESETMODE != "SYNC" && RESETMODE != "ASYNC") || CLKAMUX != "CLKA" || CLKBMUX != "CLKB") begin
      $display("DP16KD model: unsupported RESETMODE %0s / CLKAMUX %0s / CLKBMUX %0s", RESETMODE, CLKAMUX, CLKBMUX);
      $finish;
    end
    if (!((DATA_WIDTH_A == 18 || DATA_WIDTH_A == 9 || DATA_WIDTH_A == 4 || DATA_WIDTH_A == 2 || DATA_WIDTH_A == 1)
          && (DATA_WIDTH_B == 18 || DATA_WIDTH_B == 9 || DATA_WIDTH_B == 4 || DATA_WIDTH_B == 2 || DATA_WIDTH_B == 1))) begin
      $display("DP16KD model: unsupported DATA_WIDTH_A %0d / DATA_WIDTH_B %0d", DATA_WIDTH_A, DATA_WIDTH_B);
      $finish;
    end
    load_initval(0, INITVAL_00);
    load_initval(1, INITVAL_01);
    load_initval(2, INITVAL_02);
    load_initval(3, INITVAL_03);
    load_initval(4, INITVAL_04);
    load_initval(5, INITVAL_05);
    load_initval(6, INITVAL_06);
    load_initval(7, INITVAL_07);
    load_initval(8, INITVAL_08);
    load_initval(9, INITVAL_09);
    load_initval(10, INITVAL_0A);
    load_initval(11, INITVAL_0B);
    load_initval(12, INITVAL_0C);
    load_initval(13, INITVAL_0D);
    load_initval(14, INITVAL_0E);
    load_initval(15, INITVAL_0F);
    load_initval(16, INITVAL_10);
    load_initval(17, INITVAL_11);
    load_initval(18, INITVAL_12);
    load_initval(19, INITVAL_13);
    load_initval(20, INITVAL_14);
    load_initval(21, INITVAL_15);
    load_initval(22, INITVAL_16);
    load_initval(23, INITVAL_17);
    load_initval(24, INITVAL_18);
    load_initval(25, INITVAL_19);
    load_initval(26, INITVAL_1A);
    load_initval(27, INITVAL_1B);
    load_initval(28, INITVAL_1C);
    load_initval(29, INITVAL_1D);
    load_initval(30, INITVAL_1E);
    load_initval(31, INITVAL_1F);
    load_initval(32, INITVAL_20);
    load_initval(33, INITVAL_21);
    load_initval(34, INITVAL_22);
    load_initval(35, INITVAL_23);
    load_initval(36, INITVAL_24);
    load_initval(37, INITVAL_25);
    load_initval(38, INITVAL_26);
    load_initval(39, INITVAL_27);
    load_initval(40, INITVAL_28);
    load_initval(41, INITVAL_29);
    load_initval(42, INITVAL_2A);
    load_initval(43, INITVAL_2B);
    load_initval(44, INITVAL_2C);
    load_initval(45, INITVAL_2D);
    load_initval(46, INITVAL_2E);
    load_initval(47, INITVAL_2F);
    load_initval(48, INITVAL_30);
    load_initval(49, INITVAL_31);
    load_initval(50, INITVAL_32);
    load_initval(51, INITVAL_33);
    load_initval(52, INITVAL_34);
    load_initval(53, INITVAL_35);
    load_initval(54, INITVAL_36);
    load_initval(55, INITVAL_37);
    load_initval(56, INITVAL_38);
    load_initval(57, INITVAL_39);
    load_initval(58, INITVAL_3A);
    load_initval(59, INITVAL_3B);
    load_initval(60, INITVAL_3C);
    load_initval(61, INITVAL_3D);
    load_initval(62, INITVAL_3E);
    load_initval(63, INITVAL_3F);
    latch_a = 0; latch_b = 0; oreg_a = 0; oreg_b = 0;
  end

  wire sel_a = {CSA2, CSA1, CSA0} == cs_decode(CSDECODE_A);
  wire sel_b = {CSB2, CSB1, CSB0} == cs_decode(CSDECODE_B);
  wire wr_a = CEA & sel_a & WEA & ~RSTA;
  wire wr_b = CEB & sel_b & WEB & ~RSTB;

  // a word's bits are contiguous in storage: [bit_index(w, ad, 0), +w); two words overlap if their
  // ranges do (an x18 write with one byte enable counts as the whole word: conservative X)
  wire [31:0] lo_a = bit_index(DATA_WIDTH_A, ad_a, 0);
  wire [31:0] lo_b = bit_index(DATA_WIDTH_B, ad_b, 0);
  wire overlap = lo_a < lo_b + DATA_WIDTH_B && lo_b < lo_a + DATA_WIDTH_A;
  wire be_a = DATA_WIDTH_A != 18 || ad_a[1:0] != 0;
  wire be_b = DATA_WIDTH_B != 18 || ad_b[1:0] != 0;

  // RESETMODE "ASYNC": the same clearing, at once (yosys picks it for ROMs whose RST is tied low)
  always @(posedge RSTA) if (RESETMODE == "ASYNC") begin latch_a <= 0; oreg_a <= 0; end
  always @(posedge RSTB) if (RESETMODE == "ASYNC") begin latch_b <= 0; oreg_b <= 0; end

  // One always block for both ports (one shared clock): reads see the words before this edge's
  // writes; writes land with non-blocking assignments.
  reg [17:0] old_a, old_b, new_a, new_b;
  integer b;
  always @(posedge CLKA) begin
    for (b = 0; b < 18; b = b + 1) begin
      old_a[b] = b < DATA_WIDTH_A ? mem[bit_index(DATA_WIDTH_A, ad_a, b)] : 1'b0;
      old_b[b] = b < DATA_WIDTH_B ? mem[bit_index(DATA_WIDTH_B, ad_b, b)] : 1'b0;
      new_a[b] = b < DATA_WIDTH_A ? ((DATA_WIDTH_A != 18 || ad_a[b / 9]) ? di_a[b] : old_a[b]) : 1'b0;
      new_b[b] = b < DATA_WIDTH_B ? ((DATA_WIDTH_B != 18 || ad_b[b / 9]) ? di_b[b] : old_b[b]) : 1'b0;
    end
    // cross-port collision: the other port writes this word now -> unspecified
    if (wr_b && be_b && overlap) old_a = {18{1'bx}};
    if (wr_a && be_a && overlap) old_b = {18{1'bx}};
    // output registers load the latch as it was before this edge
    if (RSTA) oreg_a <= 0; else if (OCEA) oreg_a <= latch_a;
    if (RSTB) oreg_b <= 0; else if (OCEB) oreg_b <= latch_b;
    if (RSTA) latch_a <= 0;
    else if (CEA & sel_a) begin
      if (!WEA) latch_a <= old_a;
      else if (WRITEMODE_A == "WRITETHROUGH") latch_a <= new_a;
      else if (WRITEMODE_A == "READBEFOREWRITE") latch_a <= old_a;
    end
    if (RSTB) latch_b <= 0;
    else if (CEB & sel_b) begin
      if (!WEB) latch_b <= old_b;
      else if (WRITEMODE_B == "WRITETHROUGH") latch_b <= new_b;
      else if (WRITEMODE_B == "READBEFOREWRITE") latch_b <= old_b;
    end
    for (b = 0; b < 18; b = b + 1) begin
      if (wr_a && b < DATA_WIDTH_A && (DATA_WIDTH_A != 18 || ad_a[b / 9])) mem[bit_index(DATA_WIDTH_A, ad_a, b)] <= di_a[b];
      if (wr_b && b < DATA_WIDTH_B && (DATA_WIDTH_B != 18 || ad_b[b / 9])) mem[bit_index(DATA_WIDTH_B, ad_b, b)] <= di_b[b];
    end
  end
endmodule
