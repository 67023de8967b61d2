// The HiPPO bases: the impulse responses x(t) = e^{tA} B of the first states of LegS, LegT and
// FouT (N = 64), the pictures of the HiPPO and S4 papers. The systems are discretised by the
// bilinear transform with dt = 1e-3 and stepped from x_0 = dB (a unit impulse at t = 0).
//
// It prints what the pictures show: LegT and FouT remember a window (of length 2 with the
// reference's scaling of A and B), and their responses fall by orders of magnitude after it, while
// LegS, with its timescale-free measure, decays slowly. With `--csv FILE` it writes the curves (t, measure, state, value) for
// bench/plot_benchmarks.py, which draws them next to the benchmark charts.
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>

#include <Eigen/Dense>

#include <ssmkit/hippo.hpp>

int main(int argc, char** argv) {
  const char* csv_path = nullptr;
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::strcmp(argv[i], "--csv") == 0) csv_path = argv[i + 1];
  }
  const Eigen::Index N = 64, states = 4;
  const double dt = 1e-3;
  const int steps = 3000;  // t in [0, 3)
  std::ofstream csv;
  if (csv_path != nullptr) {
    csv.open(csv_path);
    csv << "t,measure,state,value\n";
  }
  bool ok = true;
  for (const char* name : {"legs", "legt", "fout"}) {
    const auto system = ssmkit::hippo::transition(name, N);
    // Bilinear: dA = (I - dt/2 A)^-1 (I + dt/2 A), dB = dt (I - dt/2 A)^-1 B.
    const Eigen::MatrixXd I = Eigen::MatrixXd::Identity(N, N);
    const Eigen::PartialPivLU<Eigen::MatrixXd> lu(I - dt / 2 * system.A);
    const Eigen::MatrixXd dA = lu.solve(I + dt / 2 * system.A);
    Eigen::VectorXd x = lu.solve(dt * system.B) / dt;  // the impulse response, not its integral over one step
    double inside = 0, outside = 0;  // max |x_n(t)| over the first states for t < 2 and t >= 2.5
    for (int k = 0; k < steps; ++k) {
      const double t = k * dt;
      for (Eigen::Index n = 0; n < states; ++n) {
        if (csv_path != nullptr && k % 4 == 0) csv << t << ',' << name << ',' << n << ',' << x(n) << '\n';
        if (t < 2) inside = std::max(inside, std::abs(x(n)));
        if (t >= 2.5) outside = std::max(outside, std::abs(x(n)));
      }
      x = dA * x;
    }
    const double ratio = outside / inside;
    std::printf("%-5s N = %ld: max |x_n(t)|, n < %ld: %.3g for t < 2, %.3g for t >= 2.5 (ratio %.2g)\n", name,
                static_cast<long>(N), static_cast<long>(states), inside, outside, ratio);
    // The translated measures forget what is older than their window; LegS does not.
    if (std::strcmp(name, "legs") != 0 && !(ratio < 0.02)) ok = false;
    if (std::strcmp(name, "legs") == 0 && !(ratio > 0.02)) ok = false;
  }
  if (csv_path != nullptr) std::printf("wrote %s\n", csv_path);
  if (!ok) std::printf("unexpected: a translated measure did not forget its past, or LegS did\n");
  return ok ? 0 : 1;
}
