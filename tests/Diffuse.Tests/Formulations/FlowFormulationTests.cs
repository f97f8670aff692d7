using Diffuse.Configuration;
using Diffuse.Data;
using Diffuse.Denoisers;
using Diffuse.Evaluation.Likelihoods;
using Diffuse.Evaluation.SampleQuality;
using Diffuse.Formulations;
using Diffuse.Models;
using Diffuse.Parameterization;
using Diffuse.Randomness;
using Diffuse.Sampling;
using Diffuse.Schedules;
using Diffuse.Tests.Training;
using Diffuse.Training;
using TorchSharp;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace Diffuse.Tests.Formulations;

/// <summary>Flow matching (issue 11): the velocity network read as a diffusion denoiser, its loss, and training through the trainer.</summary>
public class FlowFormulationTests(ITestOutputHelper output)
{
    private static readonly double[] Mean = { 1.5, -0.5 };
    private static readonly double[] Variance = { 0.25, 2.0 };
    private static readonly FormulationConfig Flow = new() { Kind = FormulationKind.Flow };

    /// <summary>
    /// The exact velocity of Gaussian data: v*(x_t, t) = E[ε − x | x_t], from the exact denoiser at σ = t/(1 − t) on the
    /// variance-preserving input z = x_t/√((1 − t)² + t²), written out here from the flow's own definition.
    /// </summary>
    private sealed class ExactVelocity(ISigmaDenoiser exact) : nn.Module<Tensor, Tensor, Tensor>("exact-velocity")
    {
        public override Tensor forward(Tensor xt, Tensor time)
        {
            double t = time[0].item<float>() / FlowFormulation.EmbeddingTimesteps;
            var z = xt / Math.Sqrt((1 - t) * (1 - t) + t * t);
            var x = exact.DenoiseAtSigma(z, t / (1 - t)).X0;
            var eps = (xt - (1 - t) * x) / t;    // from x_t = (1 − t)·x + t·ε
            return eps - x;
        }
    }

    [Theory]
    [InlineData(0.01)]
    [InlineData(0.3)]
    [InlineData(1.0)]
    [InlineData(5.0)]
    [InlineData(200.0)]
    public void TheDenoiserOfTheExactVelocityIsTheExactGaussianDenoiser(double sigma)
    {
        using var scope = NewDisposeScope();
        var formulation = Flow.Create();
        var schedule = formulation.CreateSchedule(new ScheduleConfig(Timesteps: 100));
        var exact = new GaussianDenoiser(schedule, Mean, Variance);
        var denoiser = (ISigmaDenoiser)formulation.CreateDenoiser(ConditionedNetwork.Unconditional(new ExactVelocity(exact)), schedule, Prediction.Epsilon);
        var z = SeededNoise.Normal(4, 0, 0, 256, new long[] { 2 }).to_type(ScalarType.Float64);
        var got = denoiser.DenoiseAtSigma(z, sigma);
        var want = exact.DenoiseAtSigma(z, sigma);
        Assert.True(got.X0.allclose(want.X0, rtol: 1e-4, atol: 1e-4), $"x0 differs by {(got.X0 - want.X0).abs().max().item<double>()}");
        Assert.True(got.Eps.allclose(want.Eps, rtol: 1e-3, atol: 1e-3), $"ε differs by {(got.Eps - want.Eps).abs().max().item<double>()}");
    }

    [Fact]
    public void TheScheduleIsTheStraightPathsNoiseLevels()
    {
        var schedule = Flow.Create().CreateSchedule(new ScheduleConfig(Timesteps: 999));
        // t_n = (n + 1)/(T + 1): σ = t/(1 − t) = (n + 1)/(T − n); ᾱ = (1 − t)²/((1 − t)² + t²).
        foreach (int n in new[] { 0, 1, 499, 998 })
        {
            double t = (n + 1) / 1000.0;
            Assert.Equal(t / (1 - t), schedule.Sigma(n), 1e-9 * Math.Max(1, schedule.Sigma(n)));
            Assert.Equal(FlowFormulation.AlphaBar(t), schedule.AlphaBar(n), 12);
        }
        Assert.False(schedule.HasZeroTerminalSnr);
        Assert.Equal(999, schedule.Sigma(998), 6);
    }

    /// <summary>A network that returns its input, so that the loss can be recomputed by hand.</summary>
    private sealed class Identity() : nn.Module<Tensor, Tensor, Tensor>("identity")
    {
        public override Tensor forward(Tensor input, Tensor time) => input.alias();
    }

    [Fact]
    public void TheLossRegressesTheVelocityAtLogitNormalTimes()
    {
        using var scope = NewDisposeScope();
        var formulation = new FormulationConfig { Kind = FormulationKind.Flow, Flow = new FlowConfig(LogitMean: 0.3, LogitStd: 0.8) }.Create();
        var schedule = formulation.CreateSchedule(new ScheduleConfig(Timesteps: 100));
        var x0 = SeededNoise.Normal(5, 0, 0, 64, new long[] { 3 });
        var eps = SeededNoise.Normal(5, 1, 0, 64, new long[] { 3 });
        var positions = Enumerable.Range(0, 64).Select(i => (long)i).ToArray();
        var loss = formulation.Loss(new TrainingBatch(x0, eps, positions, null, ConditionedNetwork.Unconditional(new Identity()), schedule,
            Prediction.Epsilon, Seed: 5, TimestepStream: 11, NoiseLevelStream: 12, MinSnrGamma: null, new GaussianDecoder(), Importance: null));
        // By hand: t = sigmoid(m + s·n), x_t = (1 − t)·x + t·ε, loss = mean((x_t − (ε − x))²).
        var t64 = (0.3 + 0.8 * SeededNoise.Normal(5, 12, positions, ReadOnlySpan<long>.Empty).to_type(ScalarType.Float64)).sigmoid();
        var t = t64.view(-1, 1).to_type(ScalarType.Float32);
        var xt = (1 - t) * x0 + t * eps;
        var expected = (xt - (eps - x0)).square().mean(new long[] { 1 });
        Assert.True(loss.Loss.allclose(expected, rtol: 1e-5, atol: 1e-6));
        Assert.True(loss.Quarter.eq((t64 * 4).floor().to_type(ScalarType.Int64)).all().item<bool>());
        // Logit-normal times: the sample mean of logit(t) is m within its standard error.
        var logit = (t64 / (1 - t64)).log();
        Assert.InRange(logit.mean().item<double>(), 0.3 - 5 * 0.8 / 8, 0.3 + 5 * 0.8 / 8);
    }

    [Fact]
    public void OptionsThatDoNotFitAreRejected()
    {
        var schedule = new ScheduleConfig();
        void Fails(FormulationConfig f, string fragment, Prediction prediction = Prediction.Epsilon, ScheduleConfig? s = null, double? gamma = null) =>
            Assert.Contains(fragment, Assert.Throws<DiffuseException>(() => f.Validate(prediction, s ?? schedule, gamma)).Message);
        Fails(Flow with { LearnedVariance = true }, "Drop FormulationConfig.LearnedVariance");
        Fails(Flow, "velocity", Prediction.V);
        Fails(Flow, "ScheduleConfig.Kind", s: schedule with { Kind = ScheduleKind.Cosine });
        Fails(Flow, "ScheduleConfig.ZeroTerminalSnr", s: schedule with { ZeroTerminalSnr = true });
        Fails(Flow, "TrainingConfig.MinSnrGamma", gamma: 5);
        Fails(Flow with { Flow = new FlowConfig(LogitStd: 0) }, "standard deviation");
        Fails(Flow with { Edm = new EdmConfig() }, "EDM settings were given for a FLOW model");
        Fails(new FormulationConfig { Flow = new FlowConfig() }, "FLOW settings were given for a DDPM model");
        Flow.Validate(Prediction.Epsilon, schedule);
    }

    [Fact]
    public void FlowTrainingGivesAModelThatEverySamplerTheBoundAndTheOdeLikelihoodWorkOn()
    {
        using var dir = new TempDir();
        using var data = ToyData.Sample(ToyDistribution.Moons, 2000, 0);
        using (var trainer = Trainer.Create(data, "moons", new TrainingConfig(Steps: 300, BatchSize: 256, LearningRate: 3e-3, WarmupSteps: 20, EmaDecay: 0.99),
            new ScheduleConfig(Timesteps: 1000), network: new MlpConfig(2, Width: 64, Depth: 2, TimeEmbedding: 32), formulation: Flow))
        {
            Assert.Equal(new FlowConfig(), trainer.Config.Formulation.Flow);   // the defaults are recorded
            trainer.Run(folder: dir.Path);
            double first = trainer.Losses.Take(20).Average(l => l.Loss), last = trainer.Losses.TakeLast(50).Average(l => l.Loss);
            output.WriteLine($"flow loss: first 20 steps {first:F4}, last 50 {last:F4}");
            Assert.True(last < 0.8 * first, $"the flow loss fell only from {first} to {last}");
        }
        using var model = DiffusionModel.Load(dir.Path);
        Assert.Equal(FormulationKind.Flow, model.Config.Formulation.Kind);
        using var scope = NewDisposeScope();
        using var heldOut = ToyData.Sample(ToyDistribution.Moons, 1000, 7);
        var mean = data.mean(new long[] { 0 });
        var centred = data - mean;
        var covariance = centred.T.matmul(centred) / (data.shape[0] - 1);
        var gaussian = randn(1000, 2, generator: new Generator(5)).matmul(linalg.cholesky(covariance).T) + mean;
        double gaussianDistance = SampleMetrics.EnergyDistance(gaussian, heldOut);
        foreach (var options in new[]
        {
            new SamplerOptions(SamplerKind.Euler, 20), new SamplerOptions(SamplerKind.Heun, 25), new SamplerOptions(SamplerKind.DpmSolver2M, 20),
            new SamplerOptions(SamplerKind.DpmSolver3M, 10), new SamplerOptions(SamplerKind.UniPc, 10), new SamplerOptions(SamplerKind.Ddim, 20),
            new SamplerOptions(SamplerKind.Ddpm, 100),
        })
        {
            var samples = model.Sample(1000, 3, options);
            Assert.True(samples.isfinite().all().item<bool>());
            double distance = SampleMetrics.EnergyDistance(samples, heldOut);
            output.WriteLine($"{options.Kind} {options.Steps} steps: energy distance {distance:F4} (matched Gaussian {gaussianDistance:F4})");
            // Measured after these 300 steps: 0.004–0.007 for each (two samples of the data itself: about 0.001).
            Assert.True(distance < 0.3 * gaussianDistance, $"{options.Kind}: flow samples are {distance} from the data, a matched Gaussian {gaussianDistance}");
        }
        var bound = model.Bound(heldOut.narrow(0, 0, 100));
        var nll = model.OdeNll(heldOut.narrow(0, 0, 100), new OdeLikelihoodOptions(Steps: 20));
        output.WriteLine($"flow bound {bound.NatsPerDim:F3} nats/dim, ODE NLL {nll.NatsPerDim:F3} nats/dim");
        Assert.True(double.IsFinite(bound.NatsPerDim));
        Assert.InRange(nll.NatsPerDim, -1, 3);
    }
}
