using System.Diagnostics;
using System.Globalization;
using Diffuse.Checkpoints;
using Diffuse.Cli;
using Diffuse.Configuration;
using Diffuse.Data;
using Diffuse.IO;
using Diffuse.Schedules;
using Diffuse.Tests.Distributed;
using Diffuse.Tests.Training;
using Diffuse.Training;
using static TorchSharp.torch;

namespace Diffuse.Tests.Checkpoints;

/// <summary>
/// Faults injected for real at every boundary of a checkpoint write — a crash, a full disk, a SIGKILL of the process —
/// and at random moments: every time the folder loads the previous or the new complete checkpoint (never a mix), and
/// resuming reaches the uninterrupted run's exact bytes.
/// </summary>
public class CheckpointFaultTests
{
    /// <summary>The boundaries of a checkpoint write, in order (<see cref="ModelFolder.FaultPoint"/>).</summary>
    public static readonly string[] Points =
        { "weights-written", "resume-written", "loss-written", "config-written", "committed", "weights-renamed", "resume-renamed", "loss-renamed" };

    public static TheoryData<string> Boundaries => new(Points);

    private sealed class SimulatedCrash : Exception
    {
        public SimulatedCrash(string point) : base("crash at " + point) { }
    }

    private static readonly TrainingConfig Settings = new(Steps: 12, BatchSize: 64, LearningRate: 2e-3, WarmupSteps: 2, CheckpointEvery: 4);

    private static Trainer NewTrainer(Tensor data) =>
        Trainer.Create(data, "moons", Settings, new ScheduleConfig(ScheduleKind.Linear, 50),
            network: new Diffuse.Models.MlpConfig(2, Width: 16, Depth: 1, TimeEmbedding: 8));

    /// <summary>The files of the uninterrupted run (weights and resume state) after 12 steps.</summary>
    private static (byte[] Weights, byte[] Resume) Reference(Tensor data)
    {
        using var dir = new TempDir();
        using (var trainer = NewTrainer(data)) trainer.Run(folder: dir.Path);
        return (File.ReadAllBytes(Path.Combine(dir.Path, ModelFolder.WeightsFile)), File.ReadAllBytes(Path.Combine(dir.Path, ModelFolder.ResumeFile)));
    }

    /// <summary>Loads the folder and checks it holds one complete checkpoint: step 8 or 12, with that step's weights.</summary>
    private static int AssertOneCompleteCheckpoint(string folder, byte[] weights8, byte[] weights12)
    {
        using var model = DiffusionModel.Load(folder);
        int step = model.Config.Step;
        Assert.True(step is 8 or 12, $"the folder loaded step {step}");
        using var scope = NewDisposeScope();
        string path = Path.Combine(folder, ModelFolder.WeightsFile);
        Assert.Equal(step == 8 ? weights8 : weights12, File.ReadAllBytes(path));
        return step;
    }

    [Theory]
    [MemberData(nameof(Boundaries))]
    public void ACrashOrAFullDiskAtEveryBoundaryLeavesOneCompleteCheckpointAndResumesExactly(string point)
    {
        using var data = ToyData.Sample(ToyDistribution.Moons, 400, 0);
        var (reference, referenceResume) = Reference(data);
        foreach (bool fullDisk in new[] { false, true })
        {
            using var dir = new TempDir();
            using (var first = NewTrainer(data)) first.Run(folder: dir.Path, stopAtStep: 8);
            byte[] weights8 = File.ReadAllBytes(Path.Combine(dir.Path, ModelFolder.WeightsFile));
            ModelFolder.FaultPoint = p =>
            {
                if (p != point) return;
                if (fullDisk) throw new IOException("No space left on device");
                throw new SimulatedCrash(p);
            };
            try
            {
                using var second = Trainer.Resume(dir.Path, data);
                if (fullDisk)
                {
                    var e = Assert.Throws<DiffuseException>(() => second.Run(folder: dir.Path));
                    Assert.Contains("No space left on device", e.Message);
                    Assert.Contains(point is "weights-written" or "resume-written" or "loss-written" or "config-written"
                        ? "The previous checkpoint is intact" : "is committed", e.Message);
                }
                else Assert.Throws<SimulatedCrash>(() => second.Run(folder: dir.Path));
            }
            finally
            {
                ModelFolder.FaultPoint = null;
            }
            int before = Array.IndexOf(Points, point) < Array.IndexOf(Points, "committed") ? 8 : 12;
            // Loading sees one complete checkpoint, the old one before the commit and the new one after it.
            Assert.Equal(before, AssertOneCompleteCheckpoint(dir.Path, weights8, reference));
            using (var resumed = Trainer.Resume(dir.Path, data))
            {
                Assert.Equal(before, resumed.Step);
                resumed.Run(folder: dir.Path);
            }
            Assert.Equal(reference, File.ReadAllBytes(Path.Combine(dir.Path, ModelFolder.WeightsFile)));
            Assert.Equal(referenceResume, File.ReadAllBytes(Path.Combine(dir.Path, ModelFolder.ResumeFile)));
            Assert.Empty(Directory.GetFiles(dir.Path, "*" + ModelFolder.NextSuffix));
        }
    }

    [Theory]
    [InlineData(ModelFolder.WeightsFile)]
    [InlineData(ModelFolder.ResumeFile)]
    [InlineData(ModelFolder.LossFile)]
    [InlineData(ModelFolder.ConfigFile)]
    public void ADiskThatFillsAtAnyByteOfAnyFileLeavesThePreviousCheckpoint(string file)
    {
        using var data = ToyData.Sample(ToyDistribution.Moons, 400, 0);
        var (reference, _) = Reference(data);
        foreach (long limit in new long[] { 0, 1, 8, 100, 4096, 20_000 })
        {
            using var dir = new TempDir();
            using (var first = NewTrainer(data)) first.Run(folder: dir.Path, stopAtStep: 8);
            byte[] weights8 = File.ReadAllBytes(Path.Combine(dir.Path, ModelFolder.WeightsFile));
            bool hit = false;
            AtomicFile.StreamFilter = (path, stream) => path.EndsWith(file + ModelFolder.NextSuffix, StringComparison.Ordinal)
                ? new FullDiskStream(stream, limit, () => hit = true) : stream;
            try
            {
                using var second = Trainer.Resume(dir.Path, data);
                var run = Record.Exception(() => second.Run(folder: dir.Path));
                if (hit) Assert.IsType<DiffuseException>(run);
            }
            finally
            {
                AtomicFile.StreamFilter = null;
            }
            if (!hit) continue;   // the file is smaller than the limit
            Assert.Equal(8, AssertOneCompleteCheckpoint(dir.Path, weights8, reference));
            Assert.Empty(Directory.GetFiles(dir.Path, "*.tmp"));
            using (var resumed = Trainer.Resume(dir.Path, data)) resumed.Run(folder: dir.Path);
            Assert.Equal(reference, File.ReadAllBytes(Path.Combine(dir.Path, ModelFolder.WeightsFile)));
        }
    }

    [Fact]
    public void AFolderThatBecomesReadOnlyLeavesThePreviousCheckpointAndResumesExactly()
    {
        // Root ignores permission bits, so the refusal of a read-only file system is injected where it would surface.
        using var data = ToyData.Sample(ToyDistribution.Moons, 400, 0);
        var (reference, _) = Reference(data);
        using var dir = new TempDir();
        using (var first = NewTrainer(data)) first.Run(folder: dir.Path, stopAtStep: 8);
        byte[] weights8 = File.ReadAllBytes(Path.Combine(dir.Path, ModelFolder.WeightsFile));
        ModelFolder.FaultPoint = p => { if (p == "weights-written") throw new UnauthorizedAccessException("Access to the path is denied (read-only file system)."); };
        try
        {
            using var second = Trainer.Resume(dir.Path, data);
            var e = Assert.Throws<DiffuseException>(() => second.Run(folder: dir.Path));
            Assert.Contains("read-only file system", e.Message);
            Assert.Contains("The previous checkpoint is intact", e.Message);
        }
        finally
        {
            ModelFolder.FaultPoint = null;
        }
        Assert.Equal(8, AssertOneCompleteCheckpoint(dir.Path, weights8, reference));
        using (var resumed = Trainer.Resume(dir.Path, data)) resumed.Run(folder: dir.Path);
        Assert.Equal(reference, File.ReadAllBytes(Path.Combine(dir.Path, ModelFolder.WeightsFile)));
    }

    [Theory]
    [InlineData("/proc/diffuse-test-run")]          // a file system that refuses every write, even root's
    [InlineData("{file}")]                          // an existing file
    [InlineData("{dangling}")]                      // a dangling symlink
    public void AnUnwritableOutIsOneErrorBeforeAnyDataIsRead(string output)
    {
        using var dir = new TempDir();
        string file = Path.Combine(dir.Path, "file");
        File.WriteAllText(file, "not a folder");
        string dangling = Path.Combine(dir.Path, "dangling");
        File.CreateSymbolicLink(dangling, Path.Combine(dir.Path, "missing", "deeper"));
        string target = output.Replace("{file}", file).Replace("{dangling}", dangling);
        var clock = Stopwatch.StartNew();
        // A CSV that does not exist: had the data been read first, the error would name it instead.
        var result = MpiJobs.InProcessPlain("train", "--data", Path.Combine(dir.Path, "absent.csv"), "--out", target, "--steps", "2");
        Assert.Equal(1, result.Code);
        Assert.StartsWith("error: cannot write to", result.Err.TrimStart());
        Assert.DoesNotContain("   at ", result.Err);
        Assert.Equal("not a folder", File.ReadAllText(file));
    }

    [Fact]
    public void ADivergingRunSaysWhetherACheckpointExistsAndAdvisesWhatWorks()
    {
        using var data = ToyData.Sample(ToyDistribution.Moons, 400, 0);
        using var trainer = Trainer.Create(data, "moons", Settings with { LearningRate = 1e12, GradientClip = 0, WarmupSteps = 0 },
            new ScheduleConfig(ScheduleKind.Linear, 50), network: new Diffuse.Models.MlpConfig(2, Width: 16, Depth: 1, TimeEmbedding: 8));
        var e = Assert.Throws<DiffuseException>(() => trainer.Run());
        Assert.Contains("no checkpoint was written yet", e.Message);
        Assert.Contains("TrainingConfig.LearningRate", e.Message);
        Assert.DoesNotContain("then resume", e.Message);
    }

    [Fact]
    public void WeightsOfAnotherRunAreRefusedNamingTheFile()
    {
        using var dir = new TempDir();
        using var other = new TempDir();
        using var data = ToyData.Sample(ToyDistribution.Moons, 400, 0);
        using (var trainer = NewTrainer(data)) trainer.Run(folder: dir.Path, stopAtStep: 4);
        using (var trainer = Trainer.Create(data, "rings", Settings with { Seed = 7 }, new ScheduleConfig(ScheduleKind.Linear, 50),
                   network: new Diffuse.Models.MlpConfig(2, Width: 16, Depth: 1, TimeEmbedding: 8)))
            trainer.Run(folder: other.Path, stopAtStep: 4);
        File.Copy(Path.Combine(other.Path, ModelFolder.WeightsFile), Path.Combine(dir.Path, ModelFolder.WeightsFile), overwrite: true);
        var e = Assert.Throws<DiffuseException>(() => DiffusionModel.Load(dir.Path));
        Assert.Contains(ModelFolder.WeightsFile, e.Message);
        Assert.Contains("does not belong", e.Message);
        File.Copy(Path.Combine(other.Path, ModelFolder.ResumeFile), Path.Combine(dir.Path, ModelFolder.ResumeFile), overwrite: true);
        Assert.Contains(ModelFolder.ResumeFile, Assert.Throws<DiffuseException>(() => Trainer.Resume(dir.Path, data)).Message);
    }

    [Fact]
    public void StaleTemporariesOfDeadProcessesAreRemovedAndLiveOnesKept()
    {
        using var dir = new TempDir();
        using var data = ToyData.Sample(ToyDistribution.Moons, 400, 0);
        using (var trainer = NewTrainer(data)) trainer.Run(folder: dir.Path, stopAtStep: 4);
        using var dead = Process.Start(new ProcessStartInfo("true") { UseShellExecute = false })!;
        dead.WaitForExit();
        string stale = Path.Combine(dir.Path, $".model.safetensors.next.{dead.Id}.{Guid.NewGuid():N}.tmp");
        string live = Path.Combine(dir.Path, $".model.safetensors.next.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp");
        File.WriteAllText(stale, "partial");
        File.WriteAllText(live, "partial");
        using (var resumed = Trainer.Resume(dir.Path, data))
            Assert.Contains(resumed.RepairNotes, note => note.Contains("no longer runs", StringComparison.Ordinal));
        Assert.False(File.Exists(stale));
        Assert.True(File.Exists(live));
    }

    [Fact]
    public void TwoTrainingsCannotWriteIntoOneFolder()
    {
        using var dir = new TempDir();
        var holder = Process.Start(new ProcessStartInfo("flock", new[] { "-x", Path.Combine(dir.Path, FolderLock.FileName), "sleep", "30" }) { UseShellExecute = false })!;
        try
        {
            for (int i = 0; i < 100 && !File.Exists(Path.Combine(dir.Path, FolderLock.FileName)); i++) Thread.Sleep(50);
            Thread.Sleep(200);
            var e = Assert.Throws<DiffuseException>(() => FolderLock.Acquire(dir.Path));
            Assert.Contains("another process", e.Message);
            var result = MpiJobs.InProcessPlain("train", "--data", "moons", "--out", dir.Path, "--steps", "2");
            Assert.Equal(1, result.Code);
            Assert.StartsWith("error: another process", result.Err.TrimStart());
        }
        finally
        {
            holder.Kill(entireProcessTree: true);
            holder.WaitForExit();
        }
        // The owner is gone: its lock went with it.
        using (FolderLock.Acquire(dir.Path)) { }
    }

    [Theory]
    [MemberData(nameof(Boundaries))]
    public void AProcessKilledAtEveryBoundaryResumesToTheUninterruptedBytes(string point)
    {
        using var dir = new TempDir();
        string killed = Path.Combine(dir.Path, "killed");
        // The third checkpoint (step 12) is interrupted at the boundary by SIGKILL.
        var crash = Cli(killed, "--kill-at", point + ":3");
        Assert.Equal(137, crash.Code);
        var resumed = InProcess(killed, "--resume");
        Assert.True(resumed.Code == 0, resumed.Err);
        AssertSameCheckpoint(ReferenceRun.Value, killed);
    }

    [Fact]
    public void AProcessKilledAtTwentyRandomMomentsResumesToTheUninterruptedBytes()
    {
        using var dir = new TempDir();
        string reference = ReferenceRun.Value;
        var random = new Random(20261202);
        // How long one uninterrupted process takes here (start-up included): the kills fall inside that span.
        var clock = Stopwatch.StartNew();
        using (var whole = StartCli(Path.Combine(dir.Path, "timing"))) whole.WaitForExit();
        double span = clock.Elapsed.TotalMilliseconds;
        int killedMidRun = 0;
        for (int trial = 0; trial < 20; trial++)
        {
            string folder = Path.Combine(dir.Path, $"run{trial}");
            var job = StartCli(folder);
            Thread.Sleep((int)(span * (0.05 + 0.9 * random.NextDouble())));
            if (!job.HasExited)
            {
                job.Kill();
                killedMidRun++;
            }
            job.WaitForExit();
            // Resume until done: with no checkpoint yet the folder says so, and the run starts again.
            var resumed = File.Exists(Path.Combine(folder, ModelFolder.ConfigFile)) ? InProcess(folder, "--resume") : InProcess(folder);
            Assert.True(resumed.Code == 0, $"trial {trial}: {resumed.Err}");
            AssertSameCheckpoint(reference, folder);
        }
        Assert.True(killedMidRun >= 10, $"only {killedMidRun} of 20 kills hit a running process");
    }

    private static readonly string[] Tiny = { "--data", "moons", "--count", "400", "--steps", "16", "--checkpoint-every", "4", "--batch", "64",
        "--width", "16", "--depth", "1", "--timesteps", "50", "--threads", "1" };

    /// <summary>The uninterrupted command-line run, once for the class (its folder is kept until the process ends).</summary>
    private static readonly Lazy<string> ReferenceRun = new(() =>
    {
        string folder = Path.Combine(Path.GetTempPath(), "diffuse-test-reference-" + Guid.NewGuid().ToString("N"));
        var result = InProcess(folder);
        Assert.True(result.Code == 0, result.Err);
        AppDomain.CurrentDomain.ProcessExit += (_, _) => { try { Directory.Delete(folder, recursive: true); } catch (IOException) { } };
        return folder;
    });

    private static JobResult InProcess(string folder, params string[] extra) =>
        MpiJobs.InProcessPlain(new[] { "mpi-selftest", "--out", folder }.Concat(Tiny).Concat(extra).ToArray());

    private static JobResult Cli(string folder, params string[] extra) =>
        MpiJobs.RunProcess(new[] { "mpi-selftest", "--out", folder }.Concat(Tiny).Concat(extra).ToArray());

    private static Process StartCli(string folder)
    {
        var info = new ProcessStartInfo(Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } dotnet ? dotnet : "dotnet")
        { UseShellExecute = false, RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (var a in new[] { MpiJobs.CliDll, "mpi-selftest", "--out", folder }.Concat(Tiny)) info.ArgumentList.Add(a);
        var process = Process.Start(info)!;
        _ = process.StandardOutput.ReadToEndAsync();
        _ = process.StandardError.ReadToEndAsync();
        return process;
    }

    private static void AssertSameCheckpoint(string expected, string actual)
    {
        foreach (var file in new[] { ModelFolder.WeightsFile, ModelFolder.ResumeFile, ModelFolder.LossFile })
            Assert.True(File.ReadAllBytes(Path.Combine(expected, file)).AsSpan().SequenceEqual(File.ReadAllBytes(Path.Combine(actual, file))), $"{file} differs");
        Assert.Empty(Directory.GetFiles(actual, "*" + ModelFolder.NextSuffix));
    }

    /// <summary>A stream that fails like a full disk once <see cref="_limit"/> bytes were written through it.</summary>
    private sealed class FullDiskStream(Stream inner, long limit, Action onFull) : Stream
    {
        private long _written;
        private readonly long _limit = limit;

        public override bool CanRead => false;
        public override bool CanSeek => false;
        public override bool CanWrite => true;
        public override long Length => _written;
        public override long Position { get => _written; set => throw new NotSupportedException(); }
        public override void Flush() => inner.Flush();
        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

        public override void Write(ReadOnlySpan<byte> buffer)
        {
            if (_written + buffer.Length > _limit)
            {
                int room = (int)(_limit - _written);
                inner.Write(buffer[..room]);
                _written = _limit;
                onFull();
                throw new IOException("No space left on device");
            }
            inner.Write(buffer);
            _written += buffer.Length;
        }
    }
}
