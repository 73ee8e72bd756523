#include "resume.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <thread>

#include "extract.h"
#include "fanout.h"
#include "replboot/base/files.h"
#include "replboot/testing/temp_dir.h"
#include "xbstream_test_util.h"

namespace replboot::clone {
namespace {

namespace fs = std::filesystem;

ResumeId TestId() {
  ResumeId id{};
  for (size_t i = 0; i < id.size(); ++i) id[i] = static_cast<uint8_t>(0xa0 + i);
  return id;
}

ResumeState ValidState() {
  ResumeState s;
  s.donor = "127.0.0.1:3307";
  StreamHeader h;
  h.flavour = "mariadb";
  h.server_version = "10.11.6-MariaDB";
  h.tool = "mariabackup";
  h.run_id = 7;
  h.resume_id = HexEncode(TestId());
  h.checkpoint_bytes = 4u << 20;
  s.header = EncodeStreamHeader(h);
  s.run_id = 7;
  s.resume_id = TestId();
  s.offset = 5000;
  s.frame_offset = 4096;
  s.chain.fill(0x11);
  s.journal_bytes = 12;
  s.checkpoint_bytes = 4u << 20;
  s.open_files = {{"ibdata1", 4096, 4096, 4096}, {"app/t.ibd", 65536, 65536, 70000}};
  return s;
}

// The state's JSON with one change made to it.
std::string Mutated(const std::function<void(nlohmann::json&)>& change) {
  auto j = nlohmann::json::parse(EncodeResumeState(ValidState()));
  change(j);
  return j.dump();
}

TEST(ResumeStateTest, RoundTrips) {
  auto parsed = ParseResumeState(EncodeResumeState(ValidState()));
  ASSERT_TRUE(parsed) << parsed.error().message();
  EXPECT_EQ(parsed->offset, 5000u);
  EXPECT_EQ(parsed->frame_offset, 4096u);
  EXPECT_EQ(parsed->chain, ValidState().chain);
  EXPECT_EQ(parsed->resume_id, TestId());
  ASSERT_EQ(parsed->open_files.size(), 2u);
  EXPECT_EQ(parsed->open_files[1].path, "app/t.ibd");
  EXPECT_EQ(parsed->open_files[1].logical, 70000u);
}

TEST(ResumeStateTest, RefusesHostileInput) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"not json", "{\"version\": 1,"},
      {"array", "[]"},
      {"missing key", Mutated([](auto& j) { j.erase("chain"); })},
      {"extra key", Mutated([](auto& j) { j["extra"] = 1; })},
      {"float offset", Mutated([](auto& j) { j["offset"] = 5000.5; })},
      {"negative offset", Mutated([](auto& j) { j["offset"] = -1; })},
      {"string offset", Mutated([](auto& j) { j["offset"] = "5000"; })},
      {"huge offset", Mutated([](auto& j) { j["offset"] = uint64_t{1} << 63; })},
      {"offset before frame", Mutated([](auto& j) { j["offset"] = 4000; })},
      {"offset past frame", Mutated([](auto& j) { j["offset"] = 4096 + (1 << 20); })},
      {"offset zero", Mutated([](auto& j) { j["offset"] = 0; j["frame_offset"] = 0; })},
      {"version", Mutated([](auto& j) { j["version"] = 2; })},
      {"short chain", Mutated([](auto& j) { j["chain"] = "11"; })},
      {"bad hex", Mutated([](auto& j) { j["resume_id"] = std::string(32, 'g'); })},
      {"other stream", Mutated([](auto& j) { j["run_id"] = 8; })},
      {"header not json", Mutated([](auto& j) { j["header"] = "{"; })},
      {"path escapes", Mutated([](auto& j) { j["open_files"][0]["path"] = "../etc/passwd"; })},
      {"absolute path", Mutated([](auto& j) { j["open_files"][0]["path"] = "/etc/passwd"; })},
      {"path twice", Mutated([](auto& j) { j["open_files"][1]["path"] = "ibdata1"; })},
      {"file extra key", Mutated([](auto& j) { j["open_files"][0]["mode"] = 1; })},
      {"written past size", Mutated([](auto& j) { j["open_files"][1]["written"] = 80000; })},
      {"files not array", Mutated([](auto& j) { j["open_files"] = nlohmann::json::object(); })},
      {"journal too long", Mutated([](auto& j) { j["journal_bytes"] = kMaxJournalBytes + 1; })},
      {"too many files", Mutated([](auto& j) {
         for (size_t i = 0; i <= kMaxResumeOpenFiles; ++i)
           j["open_files"].push_back({{"path", "f" + std::to_string(i)}, {"next", 0},
                                      {"written", 0}, {"logical", 0}});
       })},
  };
  for (const auto& [name, text] : cases) {
    auto parsed = ParseResumeState(text);
    ASSERT_FALSE(parsed) << name;
    EXPECT_EQ(parsed.error().code(), StatusCode::kCorruption) << name;
  }
  EXPECT_FALSE(ParseResumeState(std::string(kMaxResumeStateBytes + 1, ' ')));
}

TEST(ResumeJournalTest, ReplaysCreateRenameDelete) {
  std::string j;
  backup::AppendJournal(&j, backup::kJournalCreate, "ibdata1");
  backup::AppendJournal(&j, backup::kJournalCreate, "app/a.ibd");
  backup::AppendJournal(&j, backup::kJournalCreate, "app/b.ibd");
  backup::AppendJournal(&j, backup::kJournalRename, "app/a.ibd", "app/c.ibd");
  backup::AppendJournal(&j, backup::kJournalDelete, "app/b.ibd");
  auto names = backup::ReplayJournal(j, 100);
  ASSERT_TRUE(names) << names.error().message();
  EXPECT_EQ(*names, (std::set<std::string>{"ibdata1", "app/c.ibd"}));
  // Every prefix that ends inside a record is refused, never read past.
  for (size_t cut = 1; cut < j.size(); ++cut) {
    auto prefix = backup::ReplayJournal(std::string_view(j).substr(0, cut), 100);
    if (prefix) continue;  // ends on a record boundary
    EXPECT_EQ(prefix.error().code(), StatusCode::kCorruption);
  }
  EXPECT_FALSE(backup::ReplayJournal(j, 1));  // more names than allowed
  std::string bad;
  backup::AppendJournal(&bad, 'X', "ibdata1");
  EXPECT_FALSE(backup::ReplayJournal(bad, 100));
  std::string escape;
  backup::AppendJournal(&escape, backup::kJournalCreate, "../outside");
  EXPECT_FALSE(backup::ReplayJournal(escape, 100));
  std::string length;
  length.push_back('C');
  length.push_back(static_cast<char>(0xff));
  length.push_back(static_cast<char>(0xff));
  EXPECT_FALSE(backup::ReplayJournal(length, 100));
}

TEST(FrameLogTest, LocatesTheFrameAndForgetsOlderOnes) {
  FrameLog log;
  ResumeChain a{}, b{}, c{};
  a.fill(1);
  b.fill(2);
  c.fill(3);
  log.Add({0, 100, a, b});
  log.Add({100, 50, b, c});
  auto at = log.Locate(120);
  ASSERT_TRUE(at);
  EXPECT_EQ(at->first, 100u);
  EXPECT_EQ(at->second, b);
  auto end = log.Locate(150);  // the next frame's start: the chain after the last one
  ASSERT_TRUE(end);
  EXPECT_EQ(end->first, 150u);
  EXPECT_EQ(end->second, c);
  EXPECT_FALSE(log.Locate(10));  // forgotten once a later offset was asked for
  EXPECT_FALSE(log.Locate(151));
}

// A stream of several files in 64 KiB chunks, for durable points every 1 MiB.
std::vector<uint8_t> TestStream() {
  backup::testing::StreamBuilder b;
  std::string big(3u << 20, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 131 + (i >> 12));
  b.File("ibdata1", big, 64 << 10);
  b.File("app/t1.ibd", big.substr(1000, 2u << 20), 64 << 10);
  b.File("xtrabackup_checkpoints", "backup_type = full-backuped\n");
  b.File("app/t2.ibd", big.substr(7, 1500000), 64 << 10);
  return b.bytes();
}

std::shared_ptr<DurablePoints> NewPoints() {
  auto points = std::make_shared<DurablePoints>();
  points->base = ValidState();
  points->base.open_files.clear();
  points->base.checkpoint_bytes = kMinCheckpointBytes;
  points->frames = std::make_shared<FrameLog>();
  return points;
}

// Feeds `bytes` from `from` in frames of `frame` bytes, logging each frame; stops before `stop`.
Status Feed(StreamExtractor& e, FrameLog& log, const std::vector<uint8_t>& bytes, size_t from,
            size_t stop, size_t frame) {
  for (size_t at = from; at < stop; at += frame) {
    const size_t n = std::min(frame, stop - at);
    ResumeChain before{};
    before[0] = static_cast<uint8_t>(at >> 16);
    log.Add({at, n, before, before});
    if (Status s = e.Write({bytes.data() + at, n}); !s.ok()) return s;
  }
  return Status::Ok();
}

std::map<std::string, std::string> Tree(const std::string& dir) {
  std::map<std::string, std::string> out;
  for (auto& e : fs::recursive_directory_iterator(dir)) {
    if (!e.is_regular_file()) continue;
    std::ifstream in(e.path(), std::ios::binary);
    out[fs::relative(e.path(), dir).string()] =
        std::string(std::istreambuf_iterator<char>(in), {});
  }
  return out;
}

// Killed at `cut`, after writing past its last durable point; resumed from that point, the
// extraction ends with exactly the files of one that ran through.
void ExpectResumeConverges(size_t cut) {
  replboot::testing::TempDir tmp{"resume-test"};
  const auto stream = TestStream();
  const std::string whole = tmp.Path("whole");
  fs::create_directory(whole);
  {
    auto e = MakeExtractor(whole, Flavour::kMariaDB);
    ASSERT_TRUE(e);
    ASSERT_TRUE((*e)->Write(stream).ok());
    ASSERT_TRUE((*e)->Finish().ok());
  }
  const std::string staging = tmp.Path("staging");
  fs::create_directory(staging);
  auto points = NewPoints();
  {
    auto e = MakeExtractor(staging, Flavour::kMariaDB, {}, points);
    ASSERT_TRUE(e) << e.error().message();
    ASSERT_TRUE(Feed(**e, *points->frames, stream, 0, cut, 100000).ok());
    // Dropped here: the bytes after the point are on disk, unverified or not durable.
  }
  ASSERT_GT(points->points.load(), 0u) << "no durable point before byte " << cut;
  ASSERT_TRUE(HasResumePoint(staging));
  auto state = LoadResumePoint(staging);
  ASSERT_TRUE(state) << state.error().message();
  EXPECT_EQ(state->offset, points->durable.load());
  EXPECT_LE(state->offset, cut);
  auto resumed = NewPoints();
  resumed->resume_from = *state;
  {
    auto e = MakeExtractor(staging, Flavour::kMariaDB, {}, resumed);
    ASSERT_TRUE(e) << e.error().message();
    ASSERT_TRUE(Feed(**e, *resumed->frames, stream, state->offset, stream.size(), 77777).ok());
    Status s = (*e)->Finish();
    ASSERT_TRUE(s.ok()) << s.message();
  }
  EXPECT_FALSE(HasResumePoint(staging));
  EXPECT_FALSE(fs::exists(staging + "/" + std::string(kResumeJournalName)));
  EXPECT_EQ(Tree(staging), Tree(whole)) << "cut at " << cut;
}

TEST(ResumeExtractTest, ConvergesFromEveryKindOfCut) {
  const size_t size = TestStream().size();
  for (size_t cut : {size_t{1300000}, size_t{3200000}, size_t{4000123}, size - 10}) {
    SCOPED_TRACE(cut);
    ExpectResumeConverges(cut);
  }
}

TEST(ResumeExtractTest, TheDirIsPutBackToThePoint) {
  replboot::testing::TempDir tmp{"resume-test"};
  const auto stream = TestStream();
  const std::string staging = tmp.Path("staging");
  fs::create_directory(staging);
  auto points = NewPoints();
  {
    auto e = MakeExtractor(staging, Flavour::kMariaDB, {}, points);
    ASSERT_TRUE(e);
    ASSERT_TRUE(Feed(**e, *points->frames, stream, 0, 1100000, 100000).ok());
  }
  // A file the stream made after the point (and one planted by someone else) go; a symlink
  // makes the point unusable.
  { std::ofstream(staging + "/stray") << "x"; }
  auto state = LoadResumePoint(staging);
  ASSERT_TRUE(state) << state.error().message();
  EXPECT_FALSE(fs::exists(staging + "/stray"));
  fs::create_symlink("/etc/passwd", staging + "/link");
  EXPECT_FALSE(LoadResumePoint(staging));
  fs::remove(staging + "/link");
  // A file the journal counts that is gone: no guess, a full clone.
  fs::remove(staging + "/ibdata1");
  EXPECT_FALSE(LoadResumePoint(staging));
}

TEST(ResumeExtractTest, ARenameDropsThePointUntilTheNextBoundary) {
  replboot::testing::TempDir tmp{"resume-test"};
  backup::testing::StreamBuilder b;
  b.File("ibdata1", std::string(2u << 20, 'a'), 64 << 10);
  const size_t before_rename = b.bytes().size();
  b.Rename("ibdata1", "ibdata2");
  const std::string staging = tmp.Path("staging");
  fs::create_directory(staging);
  auto points = NewPoints();
  auto e = MakeExtractor(staging, Flavour::kMariaDB, {}, points);
  ASSERT_TRUE(e);
  ASSERT_TRUE(Feed(**e, *points->frames, b.bytes(), 0, before_rename, 65536).ok());
  ASSERT_TRUE(HasResumePoint(staging));
  ASSERT_TRUE(Feed(**e, *points->frames, b.bytes(), before_rename, b.bytes().size(), 65536).ok());
  // The rename's own boundary records a new point that knows the new name.
  ASSERT_TRUE(HasResumePoint(staging));
  auto text = files::ReadFile(staging + "/" + std::string(kResumeStateName));
  ASSERT_TRUE(text);
  auto state = ParseResumeState(*text);
  ASSERT_TRUE(state);
  EXPECT_EQ(state->offset, b.bytes().size());
}

TEST(ResumeHelloTest, RoundTripsAndIsStrict) {
  ResumeRequest r;
  r.resume_id = TestId();
  r.run_id = 9;
  r.frame_offset = 123456789;
  r.chain.fill(0x5a);
  const std::string hello = EncodeHello(HelloMode::kResume, {"mysql-2", 2}, {}, r);
  auto parsed = ParseHello(hello);
  ASSERT_TRUE(parsed) << parsed.error().message();
  EXPECT_EQ(parsed->mode, HelloMode::kResume);
  ASSERT_TRUE(parsed->resume);
  EXPECT_EQ(*parsed->resume, r);
  EXPECT_EQ(parsed->client.name, "mysql-2");
  // Cut anywhere: refused.
  for (size_t cut = 0; cut < hello.size(); ++cut) EXPECT_FALSE(ParseHello(hello.substr(0, cut)));
  // Version 4 always, with the compression request before the resume request.
  EXPECT_EQ(parsed->version, 4);
  const CompressRequest zstd3{CompressMode::kZstd, 3};
  auto compressed = ParseHello(EncodeHello(HelloMode::kResume, {"mysql-2", 2}, zstd3, r));
  ASSERT_TRUE(compressed) << compressed.error().message();
  EXPECT_EQ(compressed->compress, zstd3);
  EXPECT_EQ(*compressed->resume, r);
  // Mode 2 in a version 3 HELLO is an unknown mode, as every version 3 donor says (ERROR
  // protocol: the receiver clones afresh).
  auto v3 = ParseHello(EncodeHello(HelloMode::kResume, {"mysql-2", 2}, {}, r, 3));
  ASSERT_FALSE(v3);
  EXPECT_EQ(v3.error().code(), StatusCode::kInvalidArgument);
  // A backup HELLO never carries one.
  auto backup = ParseHello(EncodeHello(HelloMode::kBackup, {"mysql-2", 2}, {}, r));
  ASSERT_TRUE(backup);
  EXPECT_FALSE(backup->resume);
  EXPECT_FALSE(ParseHello(EncodeHello(HelloMode::kBackup, {"mysql-2", 2}) + std::string(64, 'x')));
}

TEST(ResumeChainTest, DependsOnEveryInput) {
  const ResumeChain key = ResumeKey("secret-secret-secret", TestId());
  EXPECT_NE(key, ResumeKey("secret-secret-secreT", TestId()));
  const ResumeChain start = ResumeChainStart(key);
  Tag tag{};
  const ResumeChain next = ResumeChainNext(key, start, 0, 100, tag);
  EXPECT_NE(next, ResumeChainNext(key, start, 1, 100, tag));
  EXPECT_NE(next, ResumeChainNext(key, start, 0, 101, tag));
  tag[15] = 1;
  EXPECT_NE(next, ResumeChainNext(key, start, 0, 100, tag));
}

// --- the donor's side: the spool and a run's detached receivers ---

TEST(SpoolTest, IsBoundedAndPunchedBehindItsReaders) {
  replboot::testing::TempDir tmp{"spool-test"};
  auto spool = fanout::Spool::Create(tmp.path(), 3 * 1000);
  ASSERT_TRUE(spool) << spool.error().message();
  struct stat st {};
  ASSERT_EQ(::stat((*spool)->path().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto chunk_at = [](uint64_t offset) {
    fanout::Chunk c;
    c.frame.assign(kFrameHeaderSize + 1000 + kTagSize, static_cast<uint8_t>(offset / 1000));
    c.size = c.stream_bytes = 1000;
    c.offset = offset;
    return c;
  };
  for (uint64_t i = 0; i < 3; ++i) ASSERT_TRUE((*spool)->Append(chunk_at(i * 1000)).ok());
  Status full = (*spool)->Append(chunk_at(3000));
  EXPECT_EQ(full.code(), StatusCode::kUnavailable) << full.message();
  EXPECT_FALSE((*spool)->Append(chunk_at(5000)).ok());  // not the next offset either way
  auto record = (*spool)->Find(1000);
  ASSERT_TRUE(record);
  fanout::Chunk read;
  ASSERT_TRUE((*spool)->Read(1000, *record, &read).ok());
  EXPECT_EQ(read.frame.size(), kFrameHeaderSize + 1000 + kTagSize);
  EXPECT_EQ(read.frame[kFrameHeaderSize], 1);
  EXPECT_EQ(read.type, FrameType::kData);
  EXPECT_EQ(read.offset, 1000u);
  (*spool)->Release(2000);  // the first two records
  EXPECT_FALSE((*spool)->Find(0));
  EXPECT_FALSE((*spool)->Find(1000));
  EXPECT_EQ((*spool)->usage(), 1000u);
  ASSERT_TRUE((*spool)->Append(chunk_at(3000)).ok());
  const std::string dir = fs::path((*spool)->path()).parent_path();
  spool->reset();
  EXPECT_FALSE(fs::exists(dir)) << "the spool's dir outlived it";
}

struct RunFixture {
  replboot::testing::TempDir tmp{"run-resume-test"};
  fanout::ChunkPool pool{kFrameHeaderSize + 4096 + kTagSize, 4};
  std::shared_ptr<std::atomic<int>> spools = std::make_shared<std::atomic<int>>(0);
  std::shared_ptr<fanout::Run> run;
  uint64_t published = 0;

  explicit RunFixture(std::chrono::milliseconds window, std::string compression = "off",
                      int level = 0) {
    fanout::Limits limits;
    limits.resume_window = window;
    limits.spool_bytes = 1u << 30;
    limits.spool_parent = tmp.path();
    limits.spools = spools;
    run = std::make_shared<fanout::Run>(3, limits);
    EXPECT_TRUE(run->Join("mysql-2", "127.0.0.1:1"));
    run->CloseJoiningAt(std::chrono::steady_clock::now(), {});
    StreamHeader h;
    h.estimated_bytes = 1u << 20;
    h.compression = std::move(compression);
    h.compression_level = level;
    run->Start(h);
  }
  // A ZDATA chunk as a granted run makes it: `wire` payload bytes for `n` stream bytes.
  void PublishCompressed(size_t n, size_t wire) {
    auto chunk = pool.Take();
    chunk->size = wire;
    chunk->stream_bytes = n;
    chunk->type = FrameType::kZData;
    chunk->offset = published;
    std::fill_n(chunk->frame.begin() + kFrameHeaderSize, wire, static_cast<uint8_t>(published));
    published += n;
    ASSERT_TRUE(run->Publish(chunk, {}, nullptr));
  }
  void Publish(size_t n) {
    auto chunk = pool.Take();
    chunk->size = n;
    chunk->stream_bytes = n;
    chunk->offset = published;
    std::fill_n(chunk->frame.begin() + kFrameHeaderSize, n, static_cast<uint8_t>(published));
    published += n;
    ASSERT_TRUE(run->Publish(chunk, {}, nullptr));
  }
  // What a sender does: takes the next item and records a DATA frame with a chain of its own.
  fanout::Run::Item Send(ResumeChain* chain) {
    auto item = run->Next(0, std::chrono::milliseconds(500));
    if (item.kind == fanout::Run::Item::Kind::kData) {
      const ResumeChain before = *chain;
      (*chain)[0]++;
      run->Sent(0, item.chunk->offset, item.chunk->stream_bytes, item.chunk->size, before);
    }
    return item;
  }
};

TEST(RunResumeTest, ADetachedReceiverResumesFromAFrameItWasSent) {
  RunFixture f(std::chrono::milliseconds(60'000));
  ResumeChain chain{};
  ASSERT_EQ(f.Send(&chain).kind, fanout::Run::Item::Kind::kHeader);
  for (int i = 0; i < 4; ++i) f.Publish(1000);
  ResumeChain at_second{};
  for (int i = 0; i < 4; ++i) {
    if (i == 1) at_second = chain;
    ASSERT_EQ(f.Send(&chain).kind, fanout::Run::Item::Kind::kData);
  }
  EXPECT_TRUE(f.run->Gone(0, "client went away"));
  EXPECT_EQ(f.run->live(), 1u) << "a detached receiver keeps the run (and its tool) going";
  EXPECT_EQ(f.spools->load(), 1);
  f.Publish(1000);  // the tool goes on: into the spool
  ResumeRequest req;
  req.resume_id = f.run->resume_id(0);
  req.run_id = 3;
  req.frame_offset = 1000;
  req.chain = chain;  // not the chain before that frame
  std::string why;
  EXPECT_FALSE(f.run->Resume(req, {}, "mysql-2", "127.0.0.1:2", &why));
  EXPECT_NE(why.find("resume chain"), std::string::npos) << why;
  req.frame_offset = 1001;  // not a frame boundary
  req.chain = at_second;
  EXPECT_FALSE(f.run->Resume(req, {}, "mysql-2", "127.0.0.1:2", &why));
  req.frame_offset = 1000;
  req.run_id = 4;
  EXPECT_FALSE(f.run->Resume(req, {}, "mysql-2", "127.0.0.1:2", &why));
  req.run_id = 3;
  ResumeRequest other = req;
  other.resume_id[0] ^= 1;
  EXPECT_FALSE(f.run->Resume(other, {}, "mysql-2", "127.0.0.1:2", &why));
  EXPECT_TRUE(why.empty()) << "another receiver's id is none of this run's business";
  auto resumed = f.run->Resume(req, {}, "mysql-2", "127.0.0.1:2", &why);
  ASSERT_TRUE(resumed) << why;
  EXPECT_EQ(resumed->chain, at_second);
  auto header = f.run->Next(0, std::chrono::milliseconds(500));
  ASSERT_EQ(header.kind, fanout::Run::Item::Kind::kHeader);
  auto decoded = DecodeStreamHeader(header.payload);
  ASSERT_TRUE(decoded);
  EXPECT_EQ(decoded->resumed_from, 1000u);
  EXPECT_EQ(decoded->resume_id, HexEncode(req.resume_id));
  // From the spool: frames 1000.., including the one produced while it was away.
  std::vector<uint64_t> offsets;
  for (int i = 0; i < 4; ++i) {
    auto item = f.Send(&chain);
    ASSERT_EQ(item.kind, fanout::Run::Item::Kind::kData);
    EXPECT_TRUE(item.own_chunk);
    EXPECT_EQ(item.chunk->frame[kFrameHeaderSize], static_cast<uint8_t>(item.chunk->offset));
    offsets.push_back(item.chunk->offset);
  }
  EXPECT_EQ(offsets, (std::vector<uint64_t>{1000, 2000, 3000, 4000}));
  StreamTrailer trailer;
  trailer.bytes = f.published;
  f.run->Finish(trailer);
  EXPECT_EQ(f.Send(&chain).kind, fanout::Run::Item::Kind::kTrailer);
  f.run->Done(0);
  EXPECT_EQ(f.spools->load(), 0) << "the spool outlived its last reader";
  EXPECT_EQ(f.run->resume_stats().resumed, 1u);
  EXPECT_EQ(f.run->resume_stats().resent_bytes, 3000u);  // 1000..4000 went twice
}

TEST(RunResumeTest, TheWindowClosesAndTheSpoolGoes) {
  RunFixture f(std::chrono::milliseconds(100));
  ResumeChain chain{};
  ASSERT_EQ(f.Send(&chain).kind, fanout::Run::Item::Kind::kHeader);
  f.Publish(1000);
  ASSERT_EQ(f.Send(&chain).kind, fanout::Run::Item::Kind::kData);
  ASSERT_TRUE(f.run->Gone(0, "client went away"));
  std::this_thread::sleep_for(std::chrono::milliseconds(150));
  f.run->Tick();
  EXPECT_EQ(f.run->live(), 0u);
  EXPECT_EQ(f.spools->load(), 0);
  ResumeRequest req;
  req.resume_id = f.run->resume_id(0);
  req.run_id = 3;
  std::string why;
  EXPECT_FALSE(f.run->Resume(req, {}, "", "", &why));
  EXPECT_NE(why.find("gone"), std::string::npos) << why;
  EXPECT_TRUE(fs::is_empty(f.tmp.path())) << "spool left behind";
}

TEST(RunResumeTest, OffMeansGone) {
  RunFixture f(std::chrono::milliseconds(0));
  ResumeChain chain{};
  ASSERT_EQ(f.Send(&chain).kind, fanout::Run::Item::Kind::kHeader);
  f.Publish(1000);
  ASSERT_EQ(f.Send(&chain).kind, fanout::Run::Item::Kind::kData);
  EXPECT_FALSE(f.run->Gone(0, "client went away"));
  EXPECT_EQ(f.run->live(), 0u);
}

// A compressed run: the backlog and the spool keep its ZDATA frames as they were made, found by
// stream offsets; the resumed HEADER carries the grant, the TRAILER this session's wire bytes,
// and a resume that no longer asks for compression is refused (a full clone instead).
TEST(RunResumeTest, ACompressedRunResumesWithItsOwnFrames) {
  RunFixture f(std::chrono::milliseconds(60'000), "zstd", 1);
  ResumeChain chain{};
  ASSERT_EQ(f.Send(&chain).kind, fanout::Run::Item::Kind::kHeader);
  for (int i = 0; i < 3; ++i) f.PublishCompressed(1000, 300);
  ResumeChain at_second{};
  for (int i = 0; i < 3; ++i) {
    if (i == 1) at_second = chain;
    ASSERT_EQ(f.Send(&chain).kind, fanout::Run::Item::Kind::kData);
  }
  ASSERT_TRUE(f.run->Gone(0, "client went away"));
  f.PublishCompressed(1000, 200);  // made while it was away: into the spool
  ResumeRequest req;
  req.resume_id = f.run->resume_id(0);
  req.run_id = 3;
  req.frame_offset = 1000;  // a stream offset (the second frame's), not a wire one (300)
  req.chain = at_second;
  std::string why;
  EXPECT_FALSE(f.run->Resume(req, CompressRequest{}, "mysql-2", "127.0.0.1:2", &why));
  EXPECT_NE(why.find("zstd:1"), std::string::npos) << why;
  auto resumed =
      f.run->Resume(req, CompressRequest{CompressMode::kAuto, 0}, "mysql-2", "127.0.0.1:2", &why);
  ASSERT_TRUE(resumed) << why;
  auto header = f.run->Next(0, std::chrono::milliseconds(500));
  ASSERT_EQ(header.kind, fanout::Run::Item::Kind::kHeader);
  auto decoded = DecodeStreamHeader(header.payload);
  ASSERT_TRUE(decoded);
  EXPECT_EQ(decoded->resumed_from, 1000u);
  EXPECT_EQ(decoded->compression, "zstd");
  EXPECT_EQ(decoded->compression_level, 1);
  std::vector<std::pair<uint64_t, size_t>> frames;
  for (int i = 0; i < 3; ++i) {
    auto item = f.Send(&chain);
    ASSERT_EQ(item.kind, fanout::Run::Item::Kind::kData);
    EXPECT_EQ(item.chunk->type, FrameType::kZData);
    EXPECT_EQ(item.chunk->stream_bytes, 1000u);
    EXPECT_EQ(item.chunk->frame[kFrameHeaderSize], static_cast<uint8_t>(item.chunk->offset));
    frames.emplace_back(item.chunk->offset, item.chunk->size);
  }
  EXPECT_EQ(frames, (std::vector<std::pair<uint64_t, size_t>>{{1000, 300}, {2000, 300}, {3000, 200}}));
  StreamTrailer trailer;
  trailer.bytes = f.published;
  trailer.wire_bytes = 3 * 300 + 200;  // the run's
  f.run->Finish(trailer);
  auto end = f.Send(&chain);
  ASSERT_EQ(end.kind, fanout::Run::Item::Kind::kTrailer);
  auto sent = DecodeStreamTrailer(end.payload);
  ASSERT_TRUE(sent);
  EXPECT_EQ(sent->bytes, 4000u);
  EXPECT_EQ(sent->wire_bytes, 800u) << "the resumed session's wire bytes, not the run's";
  f.run->Done(0);
  EXPECT_EQ(f.run->resume_stats().resent_bytes, 2000u);  // stream bytes 1000..3000 went twice
}

// A sender that gave up for a missed frame deadline (a trickle reader) is not kept: the run would
// hold the donor's slot for it for the whole window.
TEST(RunResumeTest, AReceiverTooSlowForItsDeadlineIsNotKept) {
  RunFixture f(std::chrono::milliseconds(60'000));
  ResumeChain chain{};
  ASSERT_EQ(f.Send(&chain).kind, fanout::Run::Item::Kind::kHeader);
  f.Publish(1000);
  ASSERT_EQ(f.Send(&chain).kind, fanout::Run::Item::Kind::kData);
  EXPECT_FALSE(f.run->Gone(0, "client did not take a frame within its deadline", false));
  EXPECT_EQ(f.run->live(), 0u);
  EXPECT_EQ(f.spools->load(), 0);
}

TEST(RunResumeTest, AtMostMaxSpoolsRunsHoldOne) {
  RunFixture f(std::chrono::milliseconds(60'000));
  f.spools->store(2);  // two other runs hold one
  ResumeChain chain{};
  ASSERT_EQ(f.Send(&chain).kind, fanout::Run::Item::Kind::kHeader);
  f.Publish(1000);
  ASSERT_EQ(f.Send(&chain).kind, fanout::Run::Item::Kind::kData);
  EXPECT_FALSE(f.run->Gone(0, "client went away"));
  EXPECT_EQ(f.spools->load(), 2);
}

}  // namespace
}  // namespace replboot::clone
