#include "extract.h"

#include "replboot/backup/xbstream_extractor.h"
#include "replboot/backup/xbstream_reader.h"

namespace replboot::clone {

namespace {

// Unpacks in this process as the bytes arrive (backup/'s push parser and fsyncing
// extractor): no temporary copy of the stream, no extra pipe hop, no mbstream child.
class NativeExtractor : public StreamExtractor {
 public:
  static Result<std::unique_ptr<StreamExtractor>> Create(const std::string& dir, backup::Flavour flavour) {
    backup::ExtractOptions options;
    options.flavour = flavour;
    auto sink = backup::XbstreamExtractor::Create(dir, options);
    if (!sink) return Error(sink.error());
    return std::unique_ptr<StreamExtractor>(new NativeExtractor(std::move(*sink), flavour));
  }

  Status Write(std::span<const uint8_t> bytes) override { return reader_.Feed(bytes); }

  Status Finish() override {
    if (Status s = reader_.Finish(); !s.ok()) return s;
    return sink_->Commit();
  }

  void Abort() override {}  // the caller wipes the directory; descriptors close with the sink

 private:
  NativeExtractor(std::unique_ptr<backup::XbstreamExtractor> sink, backup::Flavour flavour)
      : sink_(std::move(sink)), reader_(ReaderOptions(flavour), sink_.get()) {}
  static backup::XbstreamReader::Options ReaderOptions(backup::Flavour flavour) {
    backup::XbstreamReader::Options options;
    options.flavour = flavour;
    return options;
  }

  std::unique_ptr<backup::XbstreamExtractor> sink_;
  backup::XbstreamReader reader_;
};

}  // namespace

Result<std::unique_ptr<StreamExtractor>> MakeExtractor(const std::string& dir, const std::string& flavour) {
  auto f = backup::ParseFlavour(flavour);
  if (!f) return Error(f.error());
  return NativeExtractor::Create(dir, *f);
}

}  // namespace replboot::clone
