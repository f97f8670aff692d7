using static Diffuse.Tests.Cli.Cli;
using System.Text.Json.Nodes;
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
        Assert.Equal(NoiseLevelSpacing.Karras, karras.Sigmas);
        Assert.Equal(3, karras.ClipX0);
        Assert.Equal("dpm++2m, karras, 10 steps", SamplerSpacings.Describe(karras, Schedule));
        var ddim = new SamplerSetting(SamplerKind.Ddim, SamplerSpacing.Linspace, 4).ToOptions();
        Assert.Equal(TimestepSpacing.Linspace, ddim.Spacing);
        Assert.Equal(SamplerSpacing.Linspace, SamplerSpacings.Of(ddim));
        Assert.Throws<DiffuseException>(() => new SamplerSetting(SamplerKind.Ddpm, SamplerSpacing.Karras, 4).ToOptions());
    }
}
