// picorv32 with 1 KiB of block RAM holding a counting loop; the count drives the LEDs.
module pico_top (input clk, output reg [7:0] leds);
  reg [5:0] reset_cnt = 0;
  wire resetn = &reset_cnt;
  always @(posedge clk) reset_cnt <= reset_cnt + {5'd0, !resetn};

  wire mem_valid, mem_instr;
  reg mem_ready;
  wire [31:0] mem_addr, mem_wdata;
  wire [3:0] mem_wstrb;
  reg [31:0] mem_rdata;

  picorv32 cpu (
    .clk(clk), .resetn(resetn), .mem_valid(mem_valid), .mem_instr(mem_instr),
    .mem_ready(mem_ready), .mem_addr(mem_addr), .mem_wdata(mem_wdata),
    .mem_wstrb(mem_wstrb), .mem_rdata(mem_rdata)
  );

  reg [31:0] memory [0:255];
  initial begin
    memory[0] = 32'h000010b7;  // lui  x1, 0x1
    memory[1] = 32'h00110113;  // addi x2, x2, 1
    memory[2] = 32'h0020a023;  // sw   x2, 0(x1)
    memory[3] = 32'hff9ff06f;  // j    -8
  end

  always @(posedge clk) begin
    mem_ready <= 0;
    if (mem_valid && !mem_ready) begin
      mem_ready <= 1;
      if (mem_addr == 32'h1000) begin
        if (mem_wstrb[0]) leds <= mem_wdata[7:0];
      end else begin
        mem_rdata <= memory[mem_addr[9:2]];
        if (mem_wstrb[0]) memory[mem_addr[9:2]][7:0] <= mem_wdata[7:0];
        if (mem_wstrb[1]) memory[mem_addr[9:2]][15:8] <= mem_wdata[15:8];
        if (mem_wstrb[2]) memory[mem_addr[9:2]][23:16] <= mem_wdata[23:16];
        if (mem_wstrb[3]) memory[mem_addr[9:2]][31:24] <= mem_wdata[31:24];
      end
    end
  end
endmodule
