using static Diffuse.Tests.Cli.Cli;
using System.Globalization;
using System.Text.RegularExpressions;
using System.Text.Json.Nodes;
using Diffuse.Benchmarking;
using Diffuse.Cli;
using Diffuse.Sampling;
using Diffuse.Schedules;
using Diffuse.Tests.Training;

namespace Diffuse.Tests.Cli;

public class BenchSamplersCommandTests
{
    private static string TrainTiny(TempDir dir)
    {
        string model = Path.Combine(dir.Path, "model");
        var result = Run("train", "--data", "moons", "--out", model, "--steps", "30", "--width", "16", "--depth", "1", "--timesteps", "50", "--count", "500");
        Assert.True(result.Code == 0, result.Err);
        return model;
    }

    private static string Describe(RecordedSetting e) => $"{e.Sampler}, {e.Spacing}, {e.Steps} step{(e.Steps == 1 ? "" : "s")}";

    [Fact]
    public void ARunReusesTheKeptMeasurementsOfTheSameSamplesAndMeasuresOnlyNewSettings()
    {
        using var dir = new TempDir();
        string model = TrainTiny(dir);
        string csvPath = Path.Combine(model, "bench-samplers.csv"), kept = Path.Combine(model, SamplerRunStore.FileName);
        string[] Bench(params string[] extra)
        {
            var run = Run(new[] { "bench-samplers", "--model", model, "--samplers", "ddim,heun", "--spacings", "trailing,karras" }.Concat(extra).ToArray());
            Assert.True(run.Code == 0, run.Err);
            return new[] { run.Out }.Concat(File.ReadAllLines(csvPath)).ToArray();
        }
        static string Cell(string line) => string.Join(',', line.Split(',').Take(6));   // role … nfe: the setting and its budget

        var first = Bench("--budgets", "2", "--count", "100");
        Assert.DoesNotContain("reusing", first[0]);
        Assert.True(File.Exists(kept));
        int settings = first.Skip(2).Select(l => l.Split(',') is var f ? $"{f[1]} {f[2]} {f[4]}" : "").Distinct().Count();   // sampler, spacing, steps

        // Budget 4 added: the measurements of budget 2 and the reference come back unchanged, wall time included.
        var wider = Bench("--budgets", "2,4", "--count", "100");
        Assert.Contains($"reusing {settings} of the ", wider[0]);
        foreach (var line in first.Skip(2))
            Assert.Contains(wider.Skip(2), l => Cell(l) == Cell(line) && l.Split(',')[6..9].SequenceEqual(line.Split(',')[6..9]));
        Assert.True(wider.Length > first.Length);

        // --fresh measures again: the same scores (sampling is seeded), new wall times.
        var fresh = Bench("--budgets", "2", "--count", "100", "--fresh");
        Assert.DoesNotContain("reusing", fresh[0]);
        Assert.Equal(first.Skip(2).Select(l => Cell(l) + l.Split(',')[6]), fresh.Skip(2).Select(l => Cell(l) + l.Split(',')[6]));

        // Other samples (another count) are not reused, and their measurements replace the file's.
        var other = Bench("--budgets", "2", "--count", "120");
        Assert.DoesNotContain("reusing", other[0]);
        Assert.Contains("will be replaced", other[0]);
        Assert.Contains("reusing ", Bench("--budgets", "2", "--count", "120")[0]);

        File.WriteAllText(kept, "{ not json");
        AssertUserError(Run("bench-samplers", "--model", model, "--budgets", "2", "--count", "120"), SamplerRunStore.FileName, "Delete it");
    }

    [Fact]
    public void BenchmarkWritesItsFilesAndSampleUsesTheRecordedSettingUnlessASamplerIsGiven()
    {
        using var dir = new TempDir();
        string model = TrainTiny(dir);
        var bench = Run("bench-samplers", "--model", model, "--budgets", "2,5", "--count", "200", "--samplers", "ddim,heun,dpm++2m");
        Assert.True(bench.Code == 0, bench.Err);
        Assert.Contains("reference: ddpm, trailing, 50 steps (50 NFE)", bench.Out);
        Assert.Contains("ODE limit: ddim, trailing, 50 steps (50 NFE)", bench.Out);
        Assert.Contains("5 NFE", bench.Out);
        Assert.Contains("best per budget", bench.Out);
        Assert.True(new FileInfo(Path.Combine(model, "bench-samplers.png")).Length > 1000);

        // The CSV: the reference, the ODE limit and 2 budgets × (ddim trailing + heun and dpm++2m on three spacings) = 14 cells.
        var lines = File.ReadAllLines(Path.Combine(model, "bench-samplers.csv"));
        Assert.StartsWith("role,sampler,spacing,budget,steps,nfe,score,std_error,seconds,best", lines[0]);
        Assert.StartsWith("reference,ddpm,trailing,50,50,50,", lines[1]);
        Assert.StartsWith("ode-limit,ddim,trailing,50,50,50,", lines[2]);
        Assert.Equal(1 + 2 + 14, lines.Length);
        Assert.Contains(lines, l => l.StartsWith("grid,heun,karras,5,3,5,", StringComparison.Ordinal));   // 3 Heun steps cost 2 + 2 + 1
        Assert.Equal(2, lines.Count(l => l.Split(',')[9] == "1"));

        // The printed gaps carry the sign of the scores: a KDE score below the reference's is worse, above it better.
        double Score(string line) => double.Parse(line.Split(',')[6], CultureInfo.InvariantCulture);
        double gap = Score(lines[1]) - Score(lines[2]);
        string odeLine = bench.Out.Split('\n').Single(l => l.StartsWith("ODE limit:", StringComparison.Ordinal));
        Assert.Contains(gap >= 0 ? "worse than the reference" : "better than the reference", odeLine);
        Assert.DoesNotContain("(-", odeLine);

        // sampler.json validates and round-trips.
        var record = SamplerRecord.Load(model);
        Assert.NotNull(record);
        Assert.Equal(new[] { 2, 5 }, record.Best.Select(e => e.Budget));
        Assert.Contains(record.DefaultBudget, new[] { 2, 5 });
        Assert.Equal("ddpm", record.Reference.Sampler);
        Assert.Equal(30, record.ModelStep);
        string copy = Path.Combine(dir.Path, "copy");
        Directory.CreateDirectory(copy);
        record.Save(copy);
        Assert.Equal(record.ToJson(), SamplerRecord.Load(copy)!.ToJson());
        foreach (var e in record.Best)
            Assert.Equal(e.Nfe, SamplerRecord.ToSetting(e).FunctionEvaluations(NoiseSchedule.Create(new ScheduleConfig(ScheduleKind.Linear, 50))));

        // Without sampler options, sample takes the default budget's best setting and says so.
        string csv = Path.Combine(dir.Path, "s.csv");
        var chosen = record.Best.First(e => e.Budget == record.DefaultBudget);
        var sample = Run("sample", "--model", model, "--count", "20", "--out", csv);
        Assert.True(sample.Code == 0, sample.Err);
        Assert.Contains($"sampler: {Describe(chosen)} (from bench-samplers, budget {record.DefaultBudget})", sample.Out);

        // --nfe takes the largest recorded budget up to it.
        var small = record.Best.First(e => e.Budget == 2);
        var nfe = Run("sample", "--model", model, "--count", "20", "--out", csv, "--nfe", "4");
        Assert.True(nfe.Code == 0, nfe.Err);
        Assert.Contains($"sampler: {Describe(small)} (from bench-samplers, budget 2 for --nfe 4)", nfe.Out);
        AssertUserError(Run("sample", "--model", model, "--count", "20", "--out", csv, "--nfe", "1"), "--nfe 1", "smallest is 2");

        // An explicit sampler wins; with --nfe it takes the most steps within the budget.
        var explicitSampler = Run("sample", "--model", model, "--count", "20", "--out", csv, "--sampler", "ddim", "--steps", "3");
        Assert.True(explicitSampler.Code == 0, explicitSampler.Err);
        Assert.Contains("sampler: ddim, trailing, 3 steps (3 network evaluations)", explicitSampler.Out);
        Assert.DoesNotContain("bench-samplers", explicitSampler.Out);
        var heun = Run("sample", "--model", model, "--count", "20", "--out", csv, "--sampler", "heun", "--sigmas", "karras", "--nfe", "10");
        Assert.True(heun.Code == 0, heun.Err);
        Assert.Contains("sampler: heun, karras, 5 steps (9 network evaluations)", heun.Out);
        AssertUserError(Run("sample", "--model", model, "--count", "20", "--out", csv, "--sampler", "ddim", "--steps", "3", "--nfe", "5"), "--nfe", "--steps");

        // eval follows the same rule.
        var eval = Run("eval", "--model", model, "--data", "moons", "--count", "100");
        Assert.True(eval.Code == 0, eval.Err);
        Assert.Contains($"sampler: {Describe(chosen)} (from bench-samplers, budget {record.DefaultBudget})", eval.Out);

        // A corrupt or inconsistent sampler.json is a one-line error naming the file; sampling with --sampler ignores it.
        string json = Path.Combine(model, SamplerRecord.FileName);
        string good = File.ReadAllText(json);
        File.WriteAllText(json, "{ not json");
        AssertUserError(Run("sample", "--model", model, "--count", "20", "--out", csv), "sampler.json", "not a valid sampler record", "bench-samplers");
        Assert.Equal(0, Run("sample", "--model", model, "--count", "20", "--out", csv, "--sampler", "ddim", "--steps", "3").Code);
        var unknown = JsonNode.Parse(good)!;
        unknown["best"]![0]!["sampler"] = "lms";
        File.WriteAllText(json, unknown.ToJsonString());
        AssertUserError(Run("sample", "--model", model, "--count", "20", "--out", csv), "sampler.json", "unknown sampler 'lms'");
        var badSpacing = JsonNode.Parse(good)!;
        badSpacing["reference"]!["spacing"] = "karras";
        File.WriteAllText(json, badSpacing.ToJsonString());
        AssertUserError(Run("sample", "--model", model, "--count", "20", "--out", csv), "sampler.json", "the reference", "karras");
        var badDefault = JsonNode.Parse(good)!;
        badDefault["defaultBudget"] = 7;
        File.WriteAllText(json, badDefault.ToJsonString());
        AssertUserError(Run("sample", "--model", model, "--count", "20", "--out", csv), "sampler.json", "default budget 7");
        File.WriteAllText(json, "{}");
        AssertUserError(Run("sample", "--model", model, "--count", "20", "--out", csv), "sampler.json", "diffuse-sampler/1");

        // Without sampler.json, --nfe needs --sampler; the default stays DDPM over every timestep.
        File.Delete(json);
        AssertUserError(Run("sample", "--model", model, "--count", "20", "--out", csv, "--nfe", "5"), "no sampler.json", "--sampler");
        var plain = Run("sample", "--model", model, "--count", "20", "--out", csv);
        Assert.True(plain.Code == 0, plain.Err);
        Assert.Contains("sampler: ddpm, trailing, 50 steps (the default", plain.Out);
    }

    [Fact]
    public void BadBenchmarkOptionsAreNamed()
    {
        using var dir = new TempDir();
        string model = Path.Combine(dir.Path, "none");
        AssertUserError(Run("bench-samplers"), "--model is required");
        AssertUserError(Run("bench-samplers", "--model", model, "--budgets", "5,x"), "--budgets");
        AssertUserError(Run("bench-samplers", "--model", model, "--budgets", "0"), "--budgets");
        AssertUserError(Run("bench-samplers", "--model", model, "--budgets", "5,5"), "repeats");
        AssertUserError(Run("bench-samplers", "--model", model, "--samplers", "ddim,lms"), "--samplers", "dpm++2m");
        AssertUserError(Run("bench-samplers", "--model", model, "--spacings", "cosine"), "--spacings", "karras");
        AssertUserError(Run("bench-samplers", "--model", model, "--samplers", "ddpm", "--spacings", "karras"), "trained timesteps");
        AssertUserError(Run("bench-samplers", "--model", model), "does not exist");
    }
}

public class SamplerSettingTests
{
    private static readonly NoiseSchedule Schedule = NoiseSchedule.Create(new ScheduleConfig(ScheduleKind.Linear, 50));

    [Theory]
    [InlineData(SamplerKind.DpmSolver2M, SamplerSpacing.Karras, 10, 10, 10)]
    [InlineData(SamplerKind.Heun, SamplerSpacing.Karras, 10, 5, 9)]     // 2 + 2 + 2 + 2 + 1
    [InlineData(SamplerKind.Heun, SamplerSpacing.Trailing, 5, 3, 5)]
    [InlineData(SamplerKind.Heun, SamplerSpacing.LogSnr, 2, 1, 1)]
    [InlineData(SamplerKind.Ddpm, SamplerSpacing.Trailing, 100, 50, 50)]  // no more than the trained timesteps
    [InlineData(SamplerKind.Euler, SamplerSpacing.Trailing, 80, 50, 50)]
    [InlineData(SamplerKind.Euler, SamplerSpacing.LogSnr, 80, 80, 80)]   // noise-level spacings are not limited to T
    public void ABudgetGetsTheMostEvaluationsThatFit(SamplerKind kind, SamplerSpacing spacing, int budget, int steps, int nfe)
    {
        var setting = SamplerSetting.ForBudget(kind, spacing, Schedule, budget);
        Assert.Equal(steps, setting.Steps);
        Assert.Equal(nfe, setting.FunctionEvaluations(Schedule));
    }

    [Fact]
    public void SettingsBecomeTheOptionsTheyName()
    {
        var karras = new SamplerSetting(SamplerKind.DpmSolver2M, SamplerSpacing.Karras, 10).ToOptions(new SamplerOptions(ClipX0: 3));
        Assert.Equal(SamplerSpacing.Karras, karras.Spacing);
        Assert.Equal(3, karras.ClipX0);
        Assert.Equal("dpm++2m, karras, 10 steps", SamplerSpacings.Describe(karras, Schedule));
        var ddim = new SamplerSetting(SamplerKind.Ddim, SamplerSpacing.Linspace, 4).ToOptions();
        Assert.Equal(SamplerSpacing.Linspace, ddim.Spacing);
        Assert.Equal(SamplerSpacing.Linspace, SamplerSpacings.Of(ddim));
        Assert.Throws<DiffuseException>(() => new SamplerSetting(SamplerKind.Ddpm, SamplerSpacing.Karras, 4).ToOptions());
    }
}

/// <summary>bench-samplers on the tiny class-conditional image model of <see cref="TinyImageModel"/> (its own instance: the benchmark writes sampler.json into it).</summary>
public class ImageBenchSamplersCommandTests(TinyImageModel tiny) : IClassFixture<TinyImageModel>
{
    [Fact]
    public void ImageBenchmarkRanksSettingsByFdBesideTheFloorAndSampleUsesTheRecord()
    {
        var bench = Run("bench-samplers", "--model", tiny.Model, "--features", tiny.Features, "--budgets", "2,4", "--samplers", "ddim,dpm++2m",
            "--count", "20", "--reference-steps", "10", "--ode-limit-steps", "6", "--threads", "1");
        Assert.True(bench.Code == 0, bench.Err);
        Assert.Contains("2 classes in turn (sample i has class i % 2), guidance 1.5", bench.Out);
        Assert.Contains($"against 20 images of the test split of {tiny.Data}", bench.Out);
        Assert.Contains("DDPM with 10 of the 50 trained timesteps, the reference, and DDIM with 6 of the 50 trained timesteps, the ODE limit", bench.Out);
        Assert.Contains("FD (Diffuse tiny features) (squared feature units, lower is better) and its ratio to the reference's (×)", bench.Out);
        Assert.Contains("reference: ddpm, trailing, 10 steps (10 NFE)", bench.Out);
        Assert.Contains("ODE limit: ddim, trailing, 6 steps (6 NFE)", bench.Out);
        Assert.Contains("floor: 20 real training images vs the same reference set: ", bench.Out);
        Assert.Contains("the reference's FD (Diffuse tiny features)", bench.Out);
        Assert.Contains("an FD at most 10% above it", bench.Out);

        // The CSV: reference, ODE limit, 2 budgets × (ddim trailing + dpm++2m on three spacings) = 8 cells, and the floor.
        var lines = File.ReadAllLines(Path.Combine(tiny.Model, "bench-samplers.csv"));
        Assert.StartsWith("reference,ddpm,trailing,10,10,10,", lines[1]);
        Assert.StartsWith("ode-limit,ddim,trailing,6,6,6,", lines[2]);
        Assert.Equal(1 + 2 + 8 + 1, lines.Length);
        Assert.StartsWith("floor,,,,,,", lines[^1]);
        double Score(string line) => double.Parse(line.Split(',')[6], CultureInfo.InvariantCulture);
        double floor = Score(lines[^1]);
        Assert.True(floor > 0 && double.IsFinite(floor), lines[^1]);

        // sampler.json: the lowest FD of each budget is the best.
        var record = SamplerRecord.Load(tiny.Model)!;
        Assert.Equal("FD (Diffuse tiny features)", record.Metric);
        Assert.False(record.HigherIsBetter);
        Assert.Equal(10, record.Reference.Steps);
        Assert.Equal(new[] { 2, 4 }, record.Best.Select(e => e.Budget));
        foreach (var best in record.Best)
        {
            var cells = lines.Where(l => l.StartsWith("grid,", StringComparison.Ordinal) && l.Split(',')[3] == best.Budget.ToString(CultureInfo.InvariantCulture));
            Assert.Equal(cells.Min(Score), best.Score);
        }

        // The cell of ddim with 2 steps is what eval prints for that sampler (same images, reference and floor).
        var ddim = lines.Single(l => l.StartsWith("grid,ddim,trailing,2,", StringComparison.Ordinal));
        var eval = Run("eval", "--model", tiny.Model, "--features", tiny.Features, "--count", "20", "--sampler", "ddim", "--steps", "2", "--threads", "1");
        Assert.True(eval.Code == 0, eval.Err);
        var fd = Regex.Match(eval.Out, @"FD \(Diffuse tiny features\)\s+(\S+)\s+(\S+)");
        Assert.True(fd.Success, eval.Out);
        Assert.Equal(Score(ddim).ToString("G4", CultureInfo.InvariantCulture), fd.Groups[1].Value);
        Assert.Equal(floor.ToString("G4", CultureInfo.InvariantCulture), fd.Groups[2].Value);

        // sample (and eval) without a sampler option use the recorded best of the default budget.
        var chosen = record.Choose(null);
        var sample = Run("sample", "--model", tiny.Model, "--count", "4", "--out", Path.Combine(tiny.Folder, "grid.png"), "--threads", "1");
        Assert.True(sample.Code == 0, sample.Err);
        Assert.Contains($"sampler: {chosen.Sampler}, {chosen.Spacing}, {chosen.Steps} step{(chosen.Steps == 1 ? "" : "s")} (from bench-samplers, budget {record.DefaultBudget})", sample.Out);
    }

    [Fact]
    public void OptionsOfTheOtherKindOfModelAreErrors()
    {
        AssertUserError(Run("bench-samplers", "--model", tiny.Model, "--data", "moons"), "is a table", "trained on images");
        AssertUserError(Run("bench-samplers", "--model", tiny.Model, "--features", Path.Combine(tiny.Folder, "none.safetensors")), "--features file", "does not exist");
        AssertUserError(Run("bench-samplers", "--model", tiny.Model, "--reference-steps", "0"), "--reference-steps must be at least 1");
        AssertUserError(Run("bench-samplers", "--model", tiny.Model, "--ode-limit-steps", "0"), "--ode-limit-steps must be at least 1");
        var unknown = Run("bench-samplers", "--model", tiny.Model, "--count", "10");
        Assert.NotEqual(0, unknown.Code);
        Assert.StartsWith("error: no feature network is known", unknown.Err.Trim().Split('\n')[^1]);

        using var dir = new TempDir();
        string model = Path.Combine(dir.Path, "moons");
        var train = Run("train", "--data", "moons", "--out", model, "--steps", "2", "--batch", "32", "--width", "8", "--depth", "1", "--timesteps", "10", "--count", "100");
        Assert.True(train.Code == 0, train.Err);
        AssertUserError(Run("bench-samplers", "--model", model, "--features", tiny.Features), "--features applies to image models", "trained on a table");
        AssertUserError(Run("bench-samplers", "--model", model, "--guidance", "2"), "--guidance applies to image models");
    }
}
