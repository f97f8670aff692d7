using System.ComponentModel;
using System.Reflection;
using Diffuse.Cli.Commands;
using Diffuse.Denoisers;
using Diffuse.Models;
using Diffuse.Parameterization;
using Diffuse.Randomness;
using Diffuse.Sampling;
using Diffuse.Schedules;
using static TorchSharp.torch;

namespace Diffuse.Tests.Sampling;

/// <summary>
/// One sampler currency: every sampler is a row of <see cref="SamplerTable"/> and an update rule run by
/// <see cref="SamplerDriver"/>; DDPM and DDIM are rules on the σ grid of their trained timesteps like the others.
/// </summary>
public class SamplerTableTests
{
    private static readonly long[] Shape = { 2 };

    private static bool Same(Tensor a, Tensor b) => a.shape.SequenceEqual(b.shape) && a.eq(b).all().item<bool>();

    [Fact]
    public void EverySamplerHasOneRowWithAUniqueName()
    {
        Assert.Equal(Enum.GetValues<SamplerKind>(), SamplerTable.All.Select(d => d.Kind));
        Assert.Equal(SamplerTable.All.Count, SamplerTable.All.Select(d => d.Name).Distinct(StringComparer.OrdinalIgnoreCase).Count());
        foreach (var row in SamplerTable.All)
        {
            Assert.Equal(row.Kind, SamplerNames.Parse(row.Name.ToUpperInvariant()));
            Assert.InRange(row.EvaluationsPerStep, 1, 2);
            using var rule = row.CreateRule();
            Assert.Equal(row.Scale, rule.Scale);
        }
    }

    /// <summary>Each option is accepted exactly by the rows that say so: validation reads the table.</summary>
    [Fact]
    public void ValidationAcceptsAnOptionExactlyWhereTheTableSaysSo()
    {
        foreach (var row in SamplerTable.All)
        {
            var plain = new SamplerOptions(row.Kind, 10);
            plain.Validate();
            var cases = new (SamplerOption Option, SamplerOptions Options)[]
            {
                (SamplerOption.Eta, plain with { Eta = 0.5 }),
                (SamplerOption.Variance, plain with { Variance = DdpmVariance.Large }),
                (SamplerOption.Churn, plain with { Churn = new StochasticChurn(10) }),
                (SamplerOption.NoiseLevels, plain with { Spacing = SamplerSpacing.Karras }),
                (SamplerOption.NoiseLevels, plain with { Spacing = SamplerSpacing.LogSnr }),
                (SamplerOption.NoiseLevels, plain with { SigmaList = new[] { 10.0, 1.0, 0.1 } }),
            };
            foreach (var (option, options) in cases)
            {
                if (row.Accepts(option)) options.Validate();
                else
                {
                    var error = Assert.Throws<DiffuseException>(options.Validate);
                    Assert.Contains(row.Name, error.Message);
                }
            }
        }
    }

    /// <summary>The command line's help names exactly the table's samplers, and <c>diffuse samplers</c> prints every row.</summary>
    [Fact]
    public void TheCommandLineHelpIsTheTable()
    {
        var property = typeof(SamplerSettings).GetProperty(nameof(SamplerSettings.Sampler))!;
        string help = property.GetCustomAttribute<DescriptionAttribute>()!.Description;
        string listed = help[..help.IndexOf(" (", StringComparison.Ordinal)];
        var names = listed.Replace(" or ", ", ").Split(", ");
        Assert.Equal(SamplerNames.All, names);
        string bench = typeof(BenchSamplersSettings).GetProperty(nameof(BenchSamplersSettings.Samplers))!.GetCustomAttribute<DescriptionAttribute>()!.Description;
        Assert.EndsWith($"(default all: {string.Join(", ", SamplerNames.All)}).", bench);

        var (code, output, _) = Cli.Cli.Run("samplers");
        Assert.Equal(0, code);
        var lines = output.Split('\n');
        foreach (var row in SamplerTable.All)
        {
            string line = Assert.Single(lines, l => l.StartsWith(row.Name + " ", StringComparison.Ordinal));
            Assert.Contains(row.Summary, line);
            Assert.Contains(row.DrawsNoise ? "yes" : "no", line);
        }
        Assert.Contains("--eta", Assert.Single(lines, l => l.StartsWith("ddim ", StringComparison.Ordinal)));
        Assert.Contains("--variance", Assert.Single(lines, l => l.StartsWith("ddpm ", StringComparison.Ordinal)));
    }

    /// <summary>
    /// DDPM (σ² = β̃ and β) and DDIM (η = 0 and 1) as rules of the driver on the σ grid reproduce, bit for bit, the
    /// timestep loop they replaced: the posterior step and DDIM's eq. 12 on ᾱ of the trained timesteps, with the network
    /// called at its integer timesteps.
    /// </summary>
    [Theory]
    [InlineData(SamplerKind.Ddpm, DdpmVariance.Small, 0.0)]
    [InlineData(SamplerKind.Ddpm, DdpmVariance.Large, 0.0)]
    [InlineData(SamplerKind.Ddim, DdpmVariance.Small, 0.0)]
    [InlineData(SamplerKind.Ddim, DdpmVariance.Small, 1.0)]
    public void DdpmAndDdimOnTheDriverEqualTheTimestepLoopBitForBit(SamplerKind kind, DdpmVariance variance, double eta)
    {
        using var scope = NewDisposeScope();
        var schedule = NoiseSchedule.Linear(200);
        manual_seed(3);
        var network = new MlpNetwork(new MlpConfig(2, Width: 32, Depth: 2, TimeEmbedding: 16), 200);
        var denoiser = new NetworkDenoiser(network, schedule, Prediction.Epsilon);
        var options = new SamplerOptions(kind, 25, SamplerSpacing.Trailing, eta, variance);
        const ulong seed = 5;
        const int count = 16;
        var sampled = Sampler.Generate(denoiser, schedule, Shape, count, seed, options);

        using var noGrad = no_grad();
        var z = SeededNoise.Normal(seed, StreamDomains.InitialNoise, 0, count, Shape);
        int[] timesteps = options.ResolveTimesteps(schedule.Timesteps);
        for (int k = 0; k < timesteps.Length; k++)
        {
            int n = timesteps[k];
            double alphaBar = schedule.AlphaBar(n), alphaBarPrev = schedule.AlphaBar(k + 1 < timesteps.Length ? timesteps[k + 1] : -1);
            var (x0, eps) = denoiser.Denoise(z, n);
            int step = k;
            Func<Tensor> noise = () => SeededNoise.Normal(seed, StreamDomains.FirstStepNoise + (ulong)step, 0, count, Shape);
            z = kind == SamplerKind.Ddpm
                ? Sampler.DdpmStep(z, x0, alphaBar, alphaBarPrev, variance, noise)
                : Sampler.DdimStep(x0, eps, alphaBar, alphaBarPrev, eta, noise);
        }
        Assert.True(Same(sampled, z), $"{kind}: the driver's run differs from the timestep loop by {(sampled - z).abs().max().item<float>()}");
    }

    /// <summary>A sampler written outside the library is one rule: Euler in five lines equals the built-in Euler bit for bit.</summary>
    [Fact]
    public void ARuleWrittenByAUserRunsOnTheDriver()
    {
        using var scope = NewDisposeScope();
        var schedule = NoiseSchedule.Linear(100);
        var denoiser = new GaussianDenoiser(schedule, new[] { 1.5, -0.5 }, new[] { 0.25, 2.0 });
        var options = new SamplerOptions(SamplerKind.Euler, 12, SamplerSpacing.Karras);
        var sigmas = options.ResolveSigmas(schedule);
        var noise = SeededNoise.Normal(1, StreamDomains.InitialNoise, 0, 64, Shape);
        using var rule = new MyEuler();
        var mine = SamplerDriver.Run(rule, denoiser, noise, sigmas, new StepNoise(1, 0), options);
        var builtIn = SigmaSamplers.Euler(denoiser, noise, sigmas, new StepNoise(1, 0), options);
        Assert.True(Same(mine, builtIn));
        Assert.Equal(12, rule.Steps);
    }

    private sealed class MyEuler : ISamplerStepRule
    {
        public int Steps { get; private set; }

        public StateScale Scale => StateScale.VarianceExploding;

        public SamplerStepResult Step(SamplerStepContext step)
        {
            Steps++;
            var (x0, eps) = step.Evaluate(step.State, step.Sigma);
            return new(x0 + step.SigmaNext * eps, x0);
        }

        public void Dispose() { }
    }

    /// <summary>
    /// DDIM (η = 0) runs backwards on the driver like the σ-space samplers: up and down again with the exact Gaussian
    /// denoiser returns the start, and its way up equals Euler's (the same ODE step in z and in x) to float rounding.
    /// Samplers that draw noise are refused on the way up.
    /// </summary>
    [Fact]
    public void DdimRunsBackwardsLikeEuler()
    {
        using var scope = NewDisposeScope();
        var schedule = NoiseSchedule.Linear(1000);
        var denoiser = new GaussianDenoiser(schedule, new[] { 1.5, -0.5 }, new[] { 0.25, 2.0 });
        var up = NoiseLevels.LogSnr(schedule, 1000)[..^1].Reverse().ToArray();
        var data = SeededNoise.Normal(2, StreamDomains.InitialNoise, 0, 32, Shape) * 0.5 + 1;
        var options = new SamplerOptions(SamplerKind.Ddim);
        var start = data / Math.Sqrt(1 + up[0] * up[0]);
        var viaDdim = SigmaSamplers.Ddim(denoiser, start, up, new StepNoise(0, 0), options);
        var viaEuler = SigmaSamplers.Euler(denoiser, start, up, new StepNoise(0, 0), options with { Kind = SamplerKind.Euler });
        double relative = ((viaDdim - viaEuler).abs().max() / viaEuler.abs().max()).item<float>();
        Assert.True(relative < 1e-4, $"DDIM and Euler differ on the way up by {relative} (relative)");
        var down = up.Reverse().Append(0.0).ToArray();
        var back = SigmaSamplers.Ddim(denoiser, viaDdim / Math.Sqrt(1 + up[^1] * up[^1]), down, new StepNoise(0, 0), options);
        Assert.True(back.allclose(data, rtol: 0, atol: 0.02), $"round trip error {(back - data).abs().max().item<float>()}");
        var error = Assert.Throws<DiffuseException>(() => SigmaSamplers.Ddpm(denoiser, start, up, new StepNoise(0, 0), new SamplerOptions()));
        Assert.Contains("ddpm draws noise", error.Message);
    }

    [Fact]
    public void OneSpacingTypeNamesTimestepsAndNoiseLevels()
    {
        var schedule = NoiseSchedule.Linear(1000);
        foreach (var spacing in Enum.GetValues<SamplerSpacing>())
        {
            Assert.Equal(spacing, SamplerSpacings.Parse(SamplerSpacings.Name(spacing)));
            var sigmas = new SamplerOptions(SamplerKind.DpmSolver2M, 10, spacing).ResolveSigmas(schedule);
            Assert.Equal(11, sigmas.Length);
            if (SamplerSpacings.IsTimesteps(spacing))
            {
                Assert.Equal(NoiseLevels.FromTimesteps(schedule, Timesteps.Select(1000, 10, spacing)), sigmas);
                Assert.Equal(sigmas, new SamplerOptions(SamplerKind.Ddim, 10, spacing).ResolveSigmas(schedule));
            }
            else Assert.Throws<DiffuseException>(() => Timesteps.Select(1000, 10, spacing));
        }
    }
}
