// tensor_view: construction from pointers, vectors and Eigen, strides, permutations and checks.
#include <array>
#include <vector>

#include <Eigen/Core>

#include <ssmkit/view.hpp>

#include "catch_compat.hpp"
#include "test_support.hpp"

using ssm_test::error_of;

TEST_CASE("make_view is row-major by default", "[view]") {
  std::vector<int> v(24);
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = int(i);
  auto t = ssmkit::make_view(v, 2, 3, 4);
  STATIC_REQUIRE(decltype(t)::rank == 3);
  CHECK(t.extent(0) == 2);
  CHECK(t.stride(0) == 12);
  CHECK(t.stride(1) == 4);
  CHECK(t.stride(2) == 1);
  CHECK(t.size() == 24);
  CHECK(t.is_contiguous());
  CHECK(t(1, 2, 3) == 23);
  CHECK(t(1, 0, 2) == 14);
  CHECK(t[1](2, 3) == 23);
  CHECK(t[1][2](3) == 23);
}

TEST_CASE("every rank from 1 to 5 indexes like a nested array", "[view]") {
  std::vector<double> v(2 * 3 * 1 * 5 * 7);
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = double(i);
  CHECK(ssmkit::make_view(v, v.size())(17) == 17);
  CHECK(ssmkit::make_view(v, 6, 35)(5, 34) == 5 * 35 + 34);
  CHECK(ssmkit::make_view(v, 6, 5, 7)(4, 3, 2) == 4 * 35 + 3 * 7 + 2);
  CHECK(ssmkit::make_view(v, 2, 3, 5, 7)(1, 2, 4, 6) == 1 * 105 + 2 * 35 + 4 * 7 + 6);
  CHECK(ssmkit::make_view(v, 2, 3, 1, 5, 7)(1, 2, 0, 4, 6) == 1 * 105 + 2 * 35 + 4 * 7 + 6);
}

TEST_CASE("token-major data is viewed channel-major by a transposition, without a copy", "[view]") {
  const std::size_t batch = 2, length = 5, dim = 3;
  std::vector<float> x(batch * length * dim);
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = float(i);
  auto tokens = ssmkit::make_view(x, batch, length, dim);
  auto channels = tokens.transposed(1, 2);
  CHECK(channels.extents() == std::array<std::size_t, 3>{batch, dim, length});
  CHECK_FALSE(channels.is_contiguous());
  for (std::size_t b = 0; b < batch; ++b)
    for (std::size_t d = 0; d < dim; ++d)
      for (std::size_t l = 0; l < length; ++l) CHECK(&channels(b, d, l) == &tokens(b, l, d));
  auto same = tokens.permuted({0, 2, 1});
  CHECK(same.strides() == channels.strides());
  CHECK(error_of([&] { (void)tokens.permuted({0, 1, 1}); }) ==
        "tensor_view::permuted: order (0, 1, 1) is not a permutation of 0..2");
}

TEST_CASE("negative and zero strides", "[view]") {
  std::vector<int> v{0, 1, 2, 3, 4};
  ssmkit::vector_view<int> reversed(v.data() + 4, {5}, {-1});
  CHECK(reversed(0) == 4);
  CHECK(reversed(4) == 0);
  ssmkit::matrix_view<const int> broadcast(v.data(), {3, 5}, {0, 1});
  CHECK(broadcast(2, 3) == 3);
  CHECK(broadcast.size() == 15);
}

TEST_CASE("views of std::vector check the size", "[view][errors]") {
  std::vector<float> v(10);
  CHECK(error_of([&] { (void)ssmkit::make_view(v, 3, 4); }) ==
        "make_view: vector of size 10 cannot be viewed with shape (3, 4) (12 elements)");
  const std::vector<float>& cv = v;
  auto c = ssmkit::make_view(cv, 2, 5);
  STATIC_REQUIRE(std::is_same_v<decltype(c), ssmkit::tensor_view<const float, 2>>);
}

TEST_CASE("checked access names the index and the shape", "[view][errors]") {
  std::vector<int> v(6);
  auto t = ssmkit::make_view(v, 2, 3);
  CHECK_NOTHROW(t.at(1, 2));
  CHECK(error_of([&] { (void)t.at(1, 3); }) == "tensor_view::at: index 3 out of range for dimension 1 of shape (2, 3)");
  CHECK(error_of([&] { (void)t.at(-1, 0); }) == "tensor_view::at: index -1 out of range for dimension 0 of shape (2, 3)");
}

TEST_CASE("Eigen matrices and maps are viewed in their storage order", "[view][eigen]") {
  Eigen::MatrixXd col_major(3, 4);
  Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> row_major(3, 4);
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 4; ++j) col_major(i, j) = row_major(i, j) = 10 * i + j;
  auto a = ssmkit::make_view(col_major);
  auto b = ssmkit::make_view(row_major);
  CHECK(a.stride(0) == 1);
  CHECK(a.stride(1) == 3);
  CHECK(b.stride(0) == 4);
  CHECK(b.stride(1) == 1);
  for (std::size_t i = 0; i < 3; ++i)
    for (std::size_t j = 0; j < 4; ++j) {
      CHECK(a(i, j) == 10.0 * double(i) + double(j));
      CHECK(b(i, j) == 10.0 * double(i) + double(j));
    }
  // A block keeps the parent's outer stride; a Map with an inner stride keeps it too.
  auto block = col_major.block(1, 1, 2, 2);
  auto vb = ssmkit::make_view(block);
  CHECK(vb(1, 1) == 22);
  CHECK(vb.stride(1) == 3);
  std::vector<float> raw(12);
  for (std::size_t i = 0; i < raw.size(); ++i) raw[i] = float(i);
  Eigen::Map<Eigen::VectorXf, 0, Eigen::InnerStride<3>> every_third(raw.data(), 4);
  auto v = ssmkit::make_vector_view(every_third);
  CHECK(v.stride(0) == 3);
  CHECK(v(3) == 9.0f);
  const Eigen::MatrixXd& const_ref = col_major;
  auto c = ssmkit::make_view(const_ref);
  STATIC_REQUIRE(std::is_same_v<decltype(c)::element_type, const double>);
  CHECK(error_of([&] { (void)ssmkit::make_vector_view(col_major); }) ==
        "make_vector_view: expected a vector, got shape (3, 4)");
}

TEST_CASE("shape, null-data and overlap checks build the standard messages", "[view][errors]") {
  std::vector<float> v(2 * 64 * 100);
  auto delta = ssmkit::make_view(v, 2, 64, 100);
  CHECK(error_of([&] { ssmkit::detail::check_shape("selective_scan", "delta", delta, {2, 64, 128}); }) ==
        "selective_scan: delta has shape (2, 64, 100), expected (2, 64, 128)");
  CHECK_NOTHROW(ssmkit::detail::check_shape("selective_scan", "delta", delta, {2, 64, 100}));
  ssmkit::tensor_view<float, 2> null_view(nullptr, {3, 4});
  CHECK(error_of([&] { ssmkit::detail::check_data("f", "x", null_view); }) == "f: x is a null view of shape (3, 4)");
  ssmkit::tensor_view<float, 2> empty_null(nullptr, {0, 4});
  CHECK_NOTHROW(ssmkit::detail::check_data("f", "x", empty_null));
  // Overlap: the first and second halves are disjoint; a shifted window overlaps both.
  auto first = ssmkit::make_view(v.data(), 100);
  auto second = ssmkit::make_view(v.data() + 100, 100);
  auto shifted = ssmkit::make_view(v.data() + 50, 100);
  CHECK_FALSE(ssmkit::detail::may_overlap(first, second));
  CHECK(ssmkit::detail::may_overlap(first, shifted));
  CHECK(ssmkit::detail::may_overlap(shifted, second));
  CHECK(error_of([&] { ssmkit::detail::check_no_overlap("f", "y", shifted, "x", first); }) == "f: y overlaps x in memory");
  // A reversed view covers the same addresses as the forward one.
  ssmkit::vector_view<float> reversed(v.data() + 99, {100}, {-1});
  CHECK(ssmkit::detail::may_overlap(reversed, first));
  CHECK_FALSE(ssmkit::detail::may_overlap(reversed, second));
}
