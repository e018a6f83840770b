// Index files that change on disk while mapped: a truncated file makes searches fail with BadFile
// naming it (the process lives), zeroed pages never make a search loop or read outside the mapping,
// and a SIGBUS that is not ours still ends the process as before.
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "index.h"
#include "test_main.h"

using canopy::ErrorCode;
using canopy::Index;
using canopy::MetricKind;

namespace {

constexpr int kDim = 8;
constexpr int kItems = 3000;  // with dim 8: about 100-200 kB, many pages

std::vector<float> vector_of(int i) {
  std::vector<float> v(kDim);
  for (int d = 0; d < kDim; ++d) v[d] = static_cast<float>(((i * 7919 + d * 104729) % 1000) / 1000.0);
  return v;
}

// Builds and saves an index of `metric` at `path`.
void save_index(MetricKind metric, const std::string& path) {
  Index index(metric, kDim);
  for (int i = 0; i < kItems; ++i) index.add_item(i, vector_of(i).data());
  index.build(8, 1);
  index.save(path);
}

long page_bytes() { return ::sysconf(_SC_PAGESIZE); }

off_t file_bytes(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 ? st.st_size : -1;
}

void copy_file(const std::string& from, const std::string& to) {
  std::FILE* in = std::fopen(from.c_str(), "rb");
  std::FILE* out = std::fopen(to.c_str(), "wb");
  char buf[65536];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, in)) > 0) std::fwrite(buf, 1, n, out);
  std::fclose(in);
  std::fclose(out);
}

size_t search(const canopy::Forest& f, int query_item, size_t k = 10) {
  std::vector<int32_t> ids(f.result_capacity(k));
  std::vector<float> distances(ids.size());
  return f.search_vector(vector_of(query_item).data(), k, -1, ids.data(), distances.data());
}

size_t search_item(const canopy::Forest& f, int item, size_t k = 10) {
  std::vector<int32_t> ids(f.result_capacity(k));
  std::vector<float> distances(ids.size());
  return f.search_item(item, k, 200, ids.data(), distances.data());
}

bool fails_naming(const std::function<void()>& call, const std::string& path) {
  try {
    call();
  } catch (const canopy::Error& e) {
    const std::string m = e.what();
    return e.code() == ErrorCode::BadFile && m.find(path) != std::string::npos && m.find("changed on disk") != std::string::npos;
  }
  return false;
}

// Runs `body` in a child process; returns the signal that ended it (0 if it exited).
int child_signal(const std::function<void()>& body) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    body();
    ::_exit(0);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFSIGNALED(status) ? WTERMSIG(status) : 0;
}

}  // namespace

TEST(truncated_file_fails_every_read_with_bad_file_and_the_process_lives) {
  const std::string dir = canopy_test::temp_dir();
  for (bool prefault : {false, true}) {  // MAP_POPULATE does not keep pages past the new end
    const std::string path = dir + (prefault ? "/truncated-prefaulted.ann" : "/truncated.ann");
    const std::string other_path = path + ".other";
    save_index(MetricKind::Euclidean, path);
    copy_file(path, other_path);
    auto index = Index::load(path, MetricKind::Euclidean, kDim, prefault);
    auto other = Index::load(other_path, MetricKind::Euclidean, kDim, prefault);
    auto forest = index->forest();
    CHECK(search(*forest, 5) == 10);

    CHECK(::truncate(path.c_str(), file_bytes(path) / 2) == 0);
    // Saving first: write(2) reads the mapping in the kernel, which sees EFAULT instead of SIGBUS.
    CHECK(fails_naming([&] { index->save(dir + "/copy-of-damaged.ann"); }, path));
    CHECK(fails_naming([&] { search(*forest, 5); }, path));
    CHECK(fails_naming([&] { search(*forest, 6); }, path));  // and every later call
    CHECK(fails_naming([&] { search_item(*forest, 1); }, path));
    std::vector<float> out(kDim);
    CHECK(fails_naming([&] { index->get_item(kItems - 1, out.data()); }, path));
    CHECK(fails_naming([&] { index->get_distance(0, kItems - 1); }, path));

    CHECK(search(*other->forest(), 5) == 10);  // other files are served as before
    index.reset();                           // unmapping a damaged mapping is fine
    CHECK(search(*other->forest(), 7) == 10);
  }
}

TEST(file_truncated_to_nothing_fails_with_bad_file) {
  const std::string path = canopy_test::temp_dir() + "/emptied.ann";
  save_index(MetricKind::Angular, path);
  auto index = Index::load(path, MetricKind::Angular, kDim, false);
  CHECK(::truncate(path.c_str(), 0) == 0);
  CHECK(fails_naming([&] { search(*index->forest(), 1); }, path));
}

// The claim mapping_guard.h makes: pages that turn to zeros under a validated forest (here written as
// zeros into the file, which the mapping shows at once) never make a search loop or read outside the
// mapping (ASan would report it), whatever pages they are: roots, splits, buckets or items.
TEST(searches_over_arbitrarily_zeroed_pages_terminate_in_bounds) {
  const std::string dir = canopy_test::temp_dir();
  const long page = page_bytes();
  for (MetricKind metric : {MetricKind::Angular, MetricKind::Euclidean, MetricKind::Manhattan, MetricKind::Dot,
                            MetricKind::Hamming}) {
    const std::string pristine = dir + "/zeroed-" + canopy::metric_name(metric) + ".ann";
    save_index(metric, pristine);
    const long pages = (file_bytes(pristine) + page - 1) / page;
    for (unsigned seed = 1; seed <= 6; ++seed) {
      const std::string path = pristine + "." + std::to_string(seed);
      copy_file(pristine, path);
      auto index = Index::load(path, metric, kDim, false);
      auto forest = index->forest();
      std::mt19937 random(seed);
      const std::vector<char> zeros(static_cast<size_t>(page), 0);
      const int fd = ::open(path.c_str(), O_WRONLY);
      for (long p = 0; p < pages; ++p) {
        if (random() % 3 == 0) CHECK(::pwrite(fd, zeros.data(), zeros.size(), p * page) == page);
      }
      ::close(fd);
      for (int q = 0; q < 20; ++q) {
        CHECK(search(*forest, q, 50) <= 50);
        CHECK(search_item(*forest, (q * 131) % kItems, 50) <= 50);
      }
    }
  }
}

// Bytes overwritten in place (same size: nothing faults, nothing is zero) hold references load would
// have refused: the search skips them instead of reading outside the forest, and fails with BadFile.
TEST(file_overwritten_in_place_with_garbage_fails_with_bad_file_reading_in_bounds) {
  const std::string path = canopy_test::temp_dir() + "/overwritten.ann";
  save_index(MetricKind::Euclidean, path);
  auto index = Index::load(path, MetricKind::Euclidean, kDim, false);
  CHECK(search(*index->forest(), 5) == 10);
  std::mt19937 random(7);
  std::vector<uint32_t> garbage(static_cast<size_t>(file_bytes(path)) / 4);
  for (auto& word : garbage) word = random();
  const int fd = ::open(path.c_str(), O_WRONLY);
  CHECK(::pwrite(fd, garbage.data(), garbage.size() * 4, 0) == static_cast<ssize_t>(garbage.size() * 4));
  ::close(fd);
  CHECK(fails_naming([&] { search(*index->forest(), 5); }, path));
  CHECK(fails_naming([&] { search_item(*index->forest(), 5); }, path));
}

TEST(a_file_whose_node_0_is_a_split_is_refused) {
  // A zeroed child id would lead back to such a node 0 and could loop; Annoy never writes one.
  const std::string path = canopy_test::temp_dir() + "/split-at-0.ann";
  save_index(MetricKind::Euclidean, path);
  const int fd = ::open(path.c_str(), O_WRONLY);
  const int32_t split_header[4] = {kItems, 0, 1, 2};  // n_descendants, a, children 1 and 2
  CHECK(::pwrite(fd, split_header, sizeof split_header, 0) == static_cast<ssize_t>(sizeof split_header));
  ::close(fd);
  REQUIRE_THROWS_CODE(Index::load(path, MetricKind::Euclidean, kDim, false), ErrorCode::BadFile);
}

TEST(a_sigbus_that_is_not_ours_still_ends_the_process) {
  const std::string dir = canopy_test::temp_dir();
  const std::string path = dir + "/guarded.ann";
  save_index(MetricKind::Euclidean, path);
  auto index = Index::load(path, MetricKind::Euclidean, kDim, false);  // the handler is installed
  // A mapping the guard does not know about.
  const std::string plain = dir + "/plain.bin";
  const int fd = ::open(plain.c_str(), O_RDWR | O_CREAT | O_TRUNC, 0644);
  CHECK(::ftruncate(fd, 4 * page_bytes()) == 0);
  CHECK(child_signal([&] {
          auto* p = static_cast<volatile const char*>(::mmap(nullptr, 4 * page_bytes(), PROT_READ, MAP_SHARED, fd, 0));
          if (::ftruncate(fd, 0) != 0) return;
          (void)p[2 * page_bytes()];
        }) == SIGBUS);
  ::close(fd);
  CHECK(child_signal([] { ::kill(::getpid(), SIGBUS); }) == SIGBUS);  // sent, not a fault
}
