#pragma once

namespace sd::models {

// Whether CPU autocast's bf16 products (matrix products, convolutions) run as fp32 products of
// the operands rounded to bf16, with the result rounded to bf16: on CPUs where LibTorch would
// otherwise sum them in bf16 (no AVX-512 BW/VL/DQ, so no oneDNN bf16), or everywhere when the
// environment sets SAMDISTILL_BF16_PRODUCTS=fp32. The numbers are then those of a CPU that
// multiplies bf16 natively, at about fp32's speed.
bool bf16_products_in_fp32();

// Puts those products in place of autocast's own, once, where bf16_products_in_fp32(); called
// by every bf16 AutocastScope on a CPU.
void prepare_bf16_products();

}  // namespace sd::models
