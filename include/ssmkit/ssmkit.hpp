#pragma once
/// \file ssmkit.hpp
/// The umbrella header: every public ssmkit header, nothing else.

#include <ssmkit/activation.hpp>
#include <ssmkit/backend.hpp>
#include <ssmkit/config.hpp>
#include <ssmkit/conv1d.hpp>
#include <ssmkit/discretize.hpp>
#include <ssmkit/error.hpp>
#include <ssmkit/fft.hpp>
#include <ssmkit/fft_conv.hpp>
#include <ssmkit/fft_conv_stream.hpp>
#include <ssmkit/golden_case.hpp>
#include <ssmkit/hippo.hpp>
#include <ssmkit/long_conv.hpp>
#include <ssmkit/mamba.hpp>
#include <ssmkit/mamba2.hpp>
#include <ssmkit/parallel.hpp>
#include <ssmkit/s4_dplr.hpp>
#include <ssmkit/s4_ptd.hpp>
#include <ssmkit/s4d.hpp>
#include <ssmkit/s4d_init.hpp>
#include <ssmkit/s4d_layer.hpp>
#include <ssmkit/safetensors.hpp>
#include <ssmkit/selective_scan.hpp>
#include <ssmkit/ssd.hpp>
#include <ssmkit/version.hpp>
#include <ssmkit/view.hpp>
