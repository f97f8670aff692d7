using System.Diagnostics;
using System.Globalization;
using Diffuse.Checkpoints;
using Diffuse.Cli;
using Diffuse.Tests.Training;
using Xunit.Abstractions;

namespace Diffuse.Tests.Distributed;

/// <summary>The outcome of one command: exit code, output, and how long it took.</summary>
public sealed record JobResult(int Code, string Out, string Err, TimeSpan Elapsed)
{
    public void AssertSucceeded(string what) => Assert.True(Code == 0, $"{what} exited with {Code}:\n{Err}\n{Out}");
}

/// <summary>One rank's checksum file written by <c>diffuse mpi-selftest --checksums</c>.</summary>
public sealed record RankLog(int StartStep, string StartChecksum, IReadOnlyList<(int Step, string Checksum, double Loss, double GradientNorm)> Steps)
{
    public static RankLog Read(string path)
    {
        Assert.True(File.Exists(path), $"{path} was not written");
        var lines = File.ReadAllLines(path).Where(l => l.Length > 0).ToArray();
        var start = lines[0].Split(' ');
        Assert.Equal("start", start[0]);
        var steps = lines.Skip(1).Select(l => l.Split(' ')).Select(p => (int.Parse(p[0], CultureInfo.InvariantCulture), p[1],
            double.Parse(p[2], CultureInfo.InvariantCulture), double.Parse(p[3], CultureInfo.InvariantCulture))).ToList();
        return new RankLog(int.Parse(start[1], CultureInfo.InvariantCulture), start[2], steps);
    }

    public string ChecksumAt(int step) => Steps.Single(s => s.Step == step).Checksum;
}

/// <summary>
/// Real MPI jobs on this machine (loopback): <c>mpiexec -n N dotnet Diffuse.Cli.dll mpi-selftest …</c>, i.e. the code
/// path of <c>diffuse train</c> plus per-rank checksums. Each job runs once and is shared by the tests that read it.
/// </summary>
public sealed class MpiJobs : IDisposable
{
    /// <summary>Tiny 2-D model (callers add --steps); B = 65 does not divide by 2 or 3, so shards are unequal (33 + 32, 22 + 22 + 21).</summary>
    public static readonly string[] Common =
        { "--data", "moons", "--count", "500", "--width", "16", "--depth", "1", "--timesteps", "50", "--batch", "65", "--threads", "1" };

    private readonly TempDir _dir = new();
    private readonly Lazy<string?> _mpiexec = new(FindOnPath);
    private readonly Lazy<bool> _openMpi;

    public MpiJobs()
    {
        _openMpi = new Lazy<bool>(() => Start(Mpiexec, new[] { "--version" }, TimeSpan.FromSeconds(30)).Out.Contains("Open", StringComparison.Ordinal));
        OneRank = new(() => InProcess("mpi-selftest", "--out", P("m1"), "--checksums", P("c1"), "--steps", "50"));
        TwoRanks = new(() => Launch(2, "mpi-selftest", "--out", P("m2"), "--checksums", P("c2"), "--steps", "50"));
        TwoRanksThenOne = new(() =>
        {
            var first = Launch(2, "mpi-selftest", "--out", P("r2"), "--checksums", P("r2-first"), "--steps", "50", "--stop-at", "25");
            first.AssertSucceeded("2-rank run stopped at step 25");
            return (first, InProcess("mpi-selftest", "--resume", "--out", P("r2"), "--checksums", P("r2-resumed"), "--steps", "50"));
        });
        // Learned variances with importance sampling (T = 50 of Common: by importance from about step 15 on).
        ImportanceOneRank = new(() => InProcess("mpi-selftest", "--out", P("i1"), "--checksums", P("ci1"), "--steps", "40",
            "--learn-variance", "--importance-sampling"));
        ImportanceTwoRanks = new(() => Launch(2, "mpi-selftest", "--out", P("i2"), "--checksums", P("ci2"), "--steps", "40",
            "--learn-variance", "--importance-sampling"));
        OneRankThenThree = new(() =>
        {
            var first = InProcess("mpi-selftest", "--out", P("r1"), "--checksums", P("r1-first"), "--steps", "50", "--stop-at", "25");
            first.AssertSucceeded("1-rank run stopped at step 25");
            return (first, Launch(3, "mpi-selftest", "--resume", "--out", P("r1"), "--checksums", P("r1-resumed"), "--steps", "50"));
        });
    }

    public string Folder => _dir.Path;
    public bool IsOpenMpi => _openMpi.Value;
    public string P(string name) => Path.Combine(_dir.Path, name);

    /// <summary>The built command-line tool (a project reference copies it, with its runtime config, beside the tests).</summary>
    public static string CliDll => Path.Combine(AppContext.BaseDirectory, "Diffuse.Cli.dll");

    public string Mpiexec => _mpiexec.Value ?? throw new Xunit.Sdk.XunitException(
        "mpiexec was not found on PATH, so the multi-process training tests cannot run. Run ./test, whose set-up installs MPICH " +
        "(it runs 'apt-get install -y mpich' as root), or install it yourself: sudo apt-get install mpich.");

    public Lazy<JobResult> OneRank { get; }
    public Lazy<JobResult> TwoRanks { get; }
    public Lazy<(JobResult First, JobResult Resumed)> TwoRanksThenOne { get; }
    public Lazy<(JobResult First, JobResult Resumed)> OneRankThenThree { get; }
    public Lazy<JobResult> ImportanceOneRank { get; }
    public Lazy<JobResult> ImportanceTwoRanks { get; }

    /// <summary>Runs <c>mpiexec -n <paramref name="ranks"/> dotnet Diffuse.Cli.dll args… (+ <see cref="Common"/>)</c>.</summary>
    public JobResult Launch(int ranks, params string[] args) => LaunchWithTimeout(ranks, TimeSpan.FromMinutes(2), args);

    public JobResult LaunchWithTimeout(int ranks, TimeSpan timeout, params string[] args)
    {
        var arguments = new List<string> { "-n", ranks.ToString(CultureInfo.InvariantCulture) };
        // Open MPI refuses root without a flag and more processes than cores without another; MPICH needs neither.
        if (_openMpi.Value) arguments.AddRange(new[] { "--allow-run-as-root", "--oversubscribe" });
        arguments.Add(Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } dotnet ? dotnet : "dotnet");
        arguments.Add(CliDll);
        arguments.AddRange(args);
        arguments.AddRange(Common);
        return Start(Mpiexec, arguments, timeout);
    }

    /// <summary>The same command in this process, as one rank without MPI.</summary>
    public static JobResult InProcess(params string[] args)
    {
        var clock = Stopwatch.StartNew();
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int code = Program.Run(args.Concat(Common).ToArray(), stdout, stderr);
        return new JobResult(code, stdout.ToString(), stderr.ToString(), clock.Elapsed);
    }

    /// <summary>The command as it is given (no <see cref="Common"/> options), in this process.</summary>
    public static JobResult InProcessPlain(params string[] args)
    {
        var clock = Stopwatch.StartNew();
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int code = Program.Run(args, stdout, stderr);
        return new JobResult(code, stdout.ToString(), stderr.ToString(), clock.Elapsed);
    }

    /// <summary><c>dotnet Diffuse.Cli.dll args…</c> as a child process without MPI (no <see cref="Common"/> options).</summary>
    public static JobResult RunProcess(string[] args, int timeoutSeconds = 120) =>
        Start(Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } dotnet ? dotnet : "dotnet",
            new[] { CliDll }.Concat(args), TimeSpan.FromSeconds(timeoutSeconds));

    private static JobResult Start(string program, IEnumerable<string> arguments, TimeSpan timeout)
    {
        var info = new ProcessStartInfo(program) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in arguments) info.ArgumentList.Add(a);
        var clock = Stopwatch.StartNew();
        using var process = Process.Start(info) ?? throw new InvalidOperationException($"could not start {program}");
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(timeout))
        {
            process.Kill(entireProcessTree: true);
            process.WaitForExit();
            throw new Xunit.Sdk.XunitException($"'{program} {string.Join(' ', info.ArgumentList)}' did not finish within {timeout.TotalSeconds:F0} s (a hang?).\n{stderr.Result}");
        }
        process.WaitForExit();
        return new JobResult(process.ExitCode, stdout.Result, stderr.Result, clock.Elapsed);
    }

    private static string? FindOnPath()
    {
        foreach (var folder in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries))
        {
            string candidate = Path.Combine(folder, "mpiexec");
            if (File.Exists(candidate)) return candidate;
        }
        return null;
    }

    public void Dispose() => _dir.Dispose();
}

/// <summary>
/// Data-parallel training over MPI, 2 and 3 ranks on loopback, against single-process runs. These start real MPI jobs,
/// so they need MPICH (or Open MPI): <c>./test</c> installs it; without it they fail and say so.
/// </summary>
public class MpiTrainingTests(MpiJobs jobs, ITestOutputHelper output) : IClassFixture<MpiJobs>
{
    /// <summary>
    /// Tolerance on weights after 50 steps of 1 rank vs N ranks. The ranks compute exactly the same per-example values;
    /// only the order of the float32 additions differs (each rank sums its shard, then MPI adds the partial sums, where
    /// one process sums all B terms at once). That changes a gradient by a few ulps (relative ~1e-7); AdamW divides by
    /// √v, so a step changes by about lr·1e-7·(a few) and the difference random-walks over 50 steps, while the weights
    /// are O(0.1–1): we measured about 1e-7 (see the test output). 1e-5 leaves two orders of margin and is still ~100
    /// times smaller than one step's update (lr ≈ 1e-3 here), so a wrong shard, a double-counted example, a missing
    /// rank's gradient or a wrong learning rate, which change a step by O(lr), cannot pass.
    /// </summary>
    private const double Tolerance = 1e-5;

    private static Dictionary<string, float[]> Weights(string folder) =>
        Safetensors.Load(Path.Combine(folder, "resume.safetensors")).ToDictionary(kv => kv.Key, kv =>
        {
            using var t = kv.Value;
            using var values = t.to_type(TorchSharp.torch.ScalarType.Float32);   // the importance history is float64
            return values.flatten().data<float>().ToArray();
        });

    private double MaxAbsDifference(string folderA, string folderB, string what)
    {
        var a = Weights(folderA);
        var b = Weights(folderB);
        Assert.Equal(a.Keys.OrderBy(k => k), b.Keys.OrderBy(k => k));
        double max = 0, scale = 0;
        foreach (var key in a.Keys.Where(k => k.StartsWith("network.", StringComparison.Ordinal) || k.StartsWith("ema.", StringComparison.Ordinal)))
            for (int i = 0; i < a[key].Length; i++)
            {
                max = Math.Max(max, Math.Abs(a[key][i] - b[key][i]));
                scale = Math.Max(scale, Math.Abs(a[key][i]));
            }
        output.WriteLine($"{what}: max |Δ weight| = {max:E2} (largest weight {scale:F3}, network and EMA)");
        return max;
    }

    private static void AssertClose(RankLog expected, RankLog actual, int fromStep)
    {
        foreach (var (step, _, loss, norm) in actual.Steps.Where(s => s.Step >= fromStep))
        {
            var e = expected.Steps.Single(s => s.Step == step);
            Assert.True(Math.Abs(e.Loss - loss) <= 1e-5 * Math.Max(1, Math.Abs(e.Loss)), $"step {step}: loss {loss} vs {e.Loss}");
            Assert.True(Math.Abs(e.GradientNorm - norm) <= 1e-4 * Math.Max(1, e.GradientNorm), $"step {step}: gradient norm {norm} vs {e.GradientNorm}");
        }
    }

    [Fact]
    public void TwoRanksWithGlobalBatchBMatchOneRankWithBatchB()
    {
        var one = jobs.OneRank.Value;
        var two = jobs.TwoRanks.Value;
        one.AssertSucceeded("1-rank run");
        two.AssertSucceeded("2-rank run");
        output.WriteLine($"1 rank in-process: {one.Elapsed.TotalSeconds:F1} s; 2 ranks under mpiexec (with start-up): {two.Elapsed.TotalSeconds:F1} s");
        Assert.Contains("(2 processes): global batch 65, 32–33 per process", two.Err);
        Assert.Contains("trained 50 steps", two.Out);
        Assert.Single(two.Out.Split('\n'), l => l.Contains("trained 50 steps", StringComparison.Ordinal));   // rank 1 is quiet

        var single = RankLog.Read(jobs.P("c1/rank0.txt"));
        var rank0 = RankLog.Read(jobs.P("c2/rank0.txt"));
        Assert.Equal(single.StartChecksum, rank0.StartChecksum);   // same initial state
        Assert.Equal(50, rank0.Steps.Count);
        AssertClose(single, rank0, fromStep: 1);                    // the global loss and gradient norm of every step
        Assert.InRange(MaxAbsDifference(jobs.P("m1"), jobs.P("m2"), "1 rank vs 2 ranks, 50 steps, B = 65"), 0, Tolerance);
    }

    [Fact]
    public void EveryRankHoldsTheSameStateAfterEveryStep()
    {
        jobs.TwoRanks.Value.AssertSucceeded("2-rank run");
        var logs = Enumerable.Range(0, 2).Select(r => File.ReadAllLines(jobs.P($"c2/rank{r}.txt"))).ToArray();
        Assert.Equal(51, logs[0].Length);
        Assert.Equal(logs[0], logs[1]);   // step, state checksum, loss and gradient norm, bit for bit

        var (_, three) = jobs.OneRankThenThree.Value;
        three.AssertSucceeded("3-rank resume");
        var threeLogs = Enumerable.Range(0, 3).Select(r => File.ReadAllLines(jobs.P($"r1-resumed/rank{r}.txt"))).ToArray();
        Assert.Equal(26, threeLogs[0].Length);
        Assert.Equal(threeLogs[0], threeLogs[1]);
        Assert.Equal(threeLogs[0], threeLogs[2]);
    }

    [Fact]
    public void ATwoRankCheckpointResumesOnOneRankAndAOneRankCheckpointOnThree()
    {
        // 2 ranks stop at step 25 (an interrupted run); 1 rank resumes to 50.
        var (first, resumed) = jobs.TwoRanksThenOne.Value;
        resumed.AssertSucceeded("1-rank resume of the 2-rank checkpoint");
        Assert.Contains("trained 50 steps", resumed.Out);
        var twoRanks = RankLog.Read(jobs.P("c2/rank0.txt"));
        var stopped = RankLog.Read(jobs.P("r2-first/rank0.txt"));
        var onOne = RankLog.Read(jobs.P("r2-resumed/rank0.txt"));
        // Exactly where it stopped: the resumed state (weights, EMA, AdamW moments and step, step) is bit for bit the
        // state the uninterrupted 2-rank run had at step 25, and the loss history carries over unchanged.
        Assert.Equal(25, onOne.StartStep);
        Assert.Equal(stopped.ChecksumAt(25), onOne.StartChecksum);
        Assert.Equal(twoRanks.ChecksumAt(25), onOne.StartChecksum);
        var uninterrupted = File.ReadAllLines(jobs.P("m2/loss.csv"));
        var continued = File.ReadAllLines(jobs.P("r2/loss.csv"));
        Assert.Equal(51, continued.Length);
        Assert.Equal(uninterrupted.Take(26), continued.Take(26));
        // Then it continues the same schedule: equal to the uninterrupted 2-rank run up to float rounding.
        AssertClose(twoRanks, onOne, fromStep: 26);
        Assert.InRange(MaxAbsDifference(jobs.P("m2"), jobs.P("r2"), "2 ranks for 50 steps vs 2 ranks for 25 then 1 rank"), 0, Tolerance);

        // The other way round, onto 3 ranks (B = 65 splits 22 + 22 + 21).
        var (oneFirst, three) = jobs.OneRankThenThree.Value;
        three.AssertSucceeded("3-rank resume of the 1-rank checkpoint");
        var oneRank = RankLog.Read(jobs.P("c1/rank0.txt"));
        var onThree = RankLog.Read(jobs.P("r1-resumed/rank0.txt"));
        Assert.Equal(oneRank.ChecksumAt(25), onThree.StartChecksum);
        AssertClose(oneRank, onThree, fromStep: 26);
        Assert.InRange(MaxAbsDifference(jobs.P("m1"), jobs.P("r1"), "1 rank for 50 steps vs 1 rank for 25 then 3 ranks"), 0, Tolerance);
    }

    [Fact]
    public void ImportanceSamplingKeepsTheSameLossHistoryOnEveryRank()
    {
        var one = jobs.ImportanceOneRank.Value;
        var two = jobs.ImportanceTwoRanks.Value;
        one.AssertSucceeded("1-rank importance-sampling run");
        two.AssertSucceeded("2-rank importance-sampling run");
        // The state checksum covers the importance sampler's loss history: every rank gathered the whole batch's losses.
        var logs = Enumerable.Range(0, 2).Select(r => File.ReadAllLines(jobs.P($"ci2/rank{r}.txt"))).ToArray();
        Assert.Equal(41, logs[0].Length);
        Assert.Equal(logs[0], logs[1]);
        // And it is the history of the single process (the same losses to float rounding, hence the same timesteps).
        AssertClose(RankLog.Read(jobs.P("ci1/rank0.txt")), RankLog.Read(jobs.P("ci2/rank0.txt")), fromStep: 1);
        Assert.InRange(MaxAbsDifference(jobs.P("i1"), jobs.P("i2"), "importance sampling, 1 rank vs 2 ranks, 40 steps"), 0, Tolerance);
        using var scope = TorchSharp.torch.NewDisposeScope();
        var history1 = Safetensors.Load(jobs.P("i1/resume.safetensors"))["importance.history"];
        var history2 = Safetensors.Load(jobs.P("i2/resume.safetensors"))["importance.history"];
        Assert.True(history1.select(1, 0).eq(10).all().item<bool>(), "every timestep should hold its full history after 40 steps");
        Assert.True(history1.allclose(history2, rtol: 1e-4, atol: 1e-6));
    }

    [Theory]
    [InlineData("throw", 1)]
    [InlineData("kill", 0)]
    public void AFailingRankEndsTheWholeJobWithinSecondsAndLeavesTheLastCheckpointValid(string mode, int failingRank)
    {
        string folder = jobs.P("fail-" + mode);
        // 100 000 steps would take many minutes: only a job that stops as a whole finishes in time.
        var result = jobs.LaunchWithTimeout(2, TimeSpan.FromSeconds(90), "mpi-selftest", "--out", folder, "--checkpoint-every", "5",
            "--fail-rank", failingRank.ToString(CultureInfo.InvariantCulture), "--fail-step", "12", "--fail-mode", mode, "--steps", "100000");
        output.WriteLine($"{mode} on rank {failingRank}: the job ended with exit code {result.Code} after {result.Elapsed.TotalSeconds:F1} s (with start-up)\n{result.Err}");
        Assert.NotEqual(0, result.Code);
        Assert.True(result.Elapsed < TimeSpan.FromSeconds(60), $"the job took {result.Elapsed.TotalSeconds:F0} s to stop");
        if (mode == "throw")
        {
            // The failing rank names itself and the cause.
            Assert.Contains($"error: rank {failingRank} of 2: injected failure after step 12", result.Err);
        }
        else
        {
            // A process that dies says nothing; rank 0 listed which process is which rank, and mpiexec names the dead one.
            var listing = System.Text.RegularExpressions.Regex.Match(result.Err, @"processes: rank 0 = pid (\d+) on \S+, rank 1 = pid (\d+)");
            Assert.True(listing.Success, result.Err);
            if (!jobs.IsOpenMpi) Assert.Contains($"PID {listing.Groups[failingRank + 1].Value} RUNNING AT", result.Out + result.Err);   // MPICH's Hydra
        }

        // The last checkpoint (step 10) is complete and resumes.
        var header = Safetensors.ReadHeader(Path.Combine(folder, "resume.safetensors"));
        Assert.Equal("10", header.Metadata["step"]);
        var resume = MpiJobs.InProcess("train", "--resume", "--out", folder, "--steps", "15");
        resume.AssertSucceeded("resume after the failure");
        Assert.Contains("trained 15 steps", resume.Out);
    }
}
