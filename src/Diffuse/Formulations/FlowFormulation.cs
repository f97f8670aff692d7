using Diffuse.Denoisers;
using Diffuse.Parameterization;
using Diffuse.Randomness;
using Diffuse.Schedules;
using static TorchSharp.torch;

namespace Diffuse.Formulations;

/// <summary>The flow-matching formulation's settings (<see cref="FlowFormulation"/>); saved with a model trained by it.</summary>
/// <param name="LogitMean">m of the logit-normal training times, logit(t) ~ N(m, s²) (Esser et al. 2024, §3.1; 0 there).</param>
/// <param name="LogitStd">s of the logit-normal training times (1 in Esser et al. 2024).</param>
public sealed record FlowConfig(double LogitMean = 0, double LogitStd = 1)
{
    /// <summary>Throws a <see cref="DiffuseException"/> naming the first invalid value.</summary>
    public void Validate()
    {
        if (!double.IsFinite(LogitMean)) throw new DiffuseException($"the logit-normal mean of flow matching's times must be finite (got {LogitMean}).");
        if (!(LogitStd > 0) || double.IsInfinity(LogitStd)) throw new DiffuseException($"the logit-normal standard deviation of flow matching's times must be positive and finite (got {LogitStd}).");
    }
}

/// <summary>
/// Flow matching with the straight (rectified-flow) path: Lipman et al. 2023 (conditional flow matching, eq. 23 with
/// σ_min = 0) and Liu et al. 2023 (rectified flow, eq. 1): x_t = (1 − t)·x + t·ε, the network v_θ(x_t, t) regressed on
/// the velocity ε − x, with times drawn logit-normal (Esser et al. 2024, §3.1, eq. 19). Notation map: t ∈ [0, 1] is
/// the flow time (0 = data), x_t the flow state. Because x_t/(1 − t) = x + σ·ε with σ = t/(1 − t), a flow model is a
/// diffusion on scaled inputs: its variance-preserving state is z = x_t/√((1 − t)² + t²), so the denoiser reads
/// x_t = z·√((1 − t)² + t²) and returns x̂ = x_t − t·v̂ and ε̂ = x_t + (1 − t)·v̂. Every sampler, guidance, the bound and
/// the ODE likelihood then work on it unchanged. The discrete schedule has T levels t_n = (n + 1)/(T + 1) (σ from
/// 1/T to T), so the highest level is all but pure noise (√ᾱ = 1/√(1 + T²)) without the special case σ = ∞.
/// The network's time input is 1000·t.
/// </summary>
public sealed class FlowFormulation : Formulation
{
    /// <summary>The network's time embedding spans 0 … 1000 (1000·t), as a DDPM network's spans its timesteps.</summary>
    public const int EmbeddingTimesteps = 1000;

    /// <summary>Flow matching with the settings of <paramref name="config"/> (its <see cref="FormulationConfig.Flow"/>, defaults when null).</summary>
    public FlowFormulation(FormulationConfig config) : base(config) { }

    private FlowConfig Settings => Config.Flow ?? new FlowConfig();

    /// <inheritdoc />
    public override FormulationConfig WithDataDefaults(double sigmaData) => Config with { Flow = Settings };

    /// <inheritdoc />
    public override void Validate(Prediction prediction, ScheduleConfig schedule, double? minSnrGamma)
    {
        Settings.Validate();
        if (Config.LearnedVariance)
            throw new DiffuseException($"learned variances belong to DDPM's discrete reverse steps; a flow model's samplers set their own. Drop {Param.Of("FormulationConfig.LearnedVariance")}.");
        if (prediction != Prediction.Epsilon)
            throw new DiffuseException($"a flow network predicts the velocity ε − x, not {prediction}: drop {Param.Of("DiffusionModelConfig.Prediction")}.");
        const string fixedLevels = "a flow model's noise levels are fixed by its straight path (t = 1/(T + 1) … T/(T + 1)); only the number of timesteps can be set";
        if (schedule.ZeroTerminalSnr) throw new DiffuseException($"{fixedLevels}: drop {Param.Of("ScheduleConfig.ZeroTerminalSnr")}.");
        if (schedule.Kind != ScheduleKind.Linear || schedule.Betas is not null) throw new DiffuseException($"{fixedLevels}: drop {Param.Of("ScheduleConfig.Kind")}.");
        if (schedule.Timesteps < 2) throw new DiffuseException($"a flow schedule needs at least two timesteps (got {schedule.Timesteps}).");
        if (minSnrGamma is not null)
            throw new DiffuseException($"min-SNR weighting applies to DDPM targets; flow matching weights every time alike: drop {Param.Of("TrainingConfig.MinSnrGamma")}.");
    }

    /// <inheritdoc />
    public override NoiseSchedule CreateSchedule(ScheduleConfig schedule)
    {
        int count = schedule.Timesteps;
        var betas = new double[count];
        double previous = 1;
        for (int n = 0; n < count; n++)
        {
            double t = (n + 1.0) / (count + 1.0);
            double alphaBar = AlphaBar(t);
            betas[n] = 1 - alphaBar / previous;
            previous = alphaBar;
        }
        return NoiseSchedule.FromBetas(betas);
    }

    /// <inheritdoc />
    public override int NetworkTimesteps(ScheduleConfig schedule) => EmbeddingTimesteps;

    /// <inheritdoc />
    public override IConditionalDenoiser CreateDenoiser(ConditionedNetwork network, NoiseSchedule schedule, Prediction prediction) =>
        new VelocityDenoiser(network, schedule);

    /// <summary>
    /// Lipman et al. 2023, eq. 23 (σ_min = 0) with the logit-normal times of Esser et al. 2024: t = sigmoid(m + s·n) for
    /// n from the batch's noise-level stream, x_t = (1 − t)·x + t·ε, the loss mean‖v_θ(x_t, t) − (ε − x)‖² per example;
    /// each example's quarter is ⌊4t⌋ (low noise first).
    /// </summary>
    public override TrainingLoss Loss(TrainingBatch batch)
    {
        var settings = Settings;
        var normal = SeededNoise.Normal(batch.Seed, batch.NoiseLevelStream, batch.Positions, ReadOnlySpan<long>.Empty, batch.Device);
        var t = (settings.LogitMean + settings.LogitStd * normal.to_type(ScalarType.Float64)).sigmoid();
        var shape = new long[batch.X0.dim()];
        Array.Fill(shape, 1L);
        shape[0] = -1;
        var rows = t.reshape(shape).to_type(batch.X0.dtype);
        var xt = (1 - rows) * batch.X0 + rows * batch.Eps;
        var output = batch.Network.Call(xt, (EmbeddingTimesteps * t).to_type(ScalarType.Float32), batch.Classes);
        var perExample = (output - (batch.Eps - batch.X0)).square().flatten(1).mean(new long[] { 1 });
        var quarter = (t * TrainingLoss.Quartiles).floor().clamp(0, TrainingLoss.Quartiles - 1).to_type(ScalarType.Int64);
        return new TrainingLoss(perExample, perExample, quarter);
    }

    /// <summary>ᾱ of flow time t: the variance-preserving signal share (1 − t)²/((1 − t)² + t²), i.e. σ = t/(1 − t).</summary>
    public static double AlphaBar(double t) => (1 - t) * (1 - t) / ((1 - t) * (1 - t) + t * t);

    /// <summary>Flow time of noise level σ: t = σ/(1 + σ) (1 at σ = ∞).</summary>
    public static double TimeOfSigma(double sigma) => double.IsPositiveInfinity(sigma) ? 1 : sigma / (1 + sigma);

    /// <summary>
    /// The velocity network read as a denoiser at any noise level: x_t = z·√((1 − t)² + t²), x̂ = x_t − t·v̂,
    /// ε̂ = x_t + (1 − t)·v̂, with t = σ/(1 + σ).
    /// </summary>
    private sealed class VelocityDenoiser(ConditionedNetwork network, NoiseSchedule schedule) : IDenoiser, ISigmaDenoiser, IConditionalDenoiser
    {
        public DenoiserOutput Denoise(Tensor z, int timestep) => Run(z, schedule.Sigma(timestep), null);

        public DenoiserOutput DenoiseAtSigma(Tensor z, double sigma) => Run(z, sigma, null);

        public DenoiserOutput Denoise(Tensor z, int timestep, Tensor? classes) => Run(z, schedule.Sigma(timestep), classes);

        public DenoiserOutput DenoiseAtSigma(Tensor z, double sigma, Tensor? classes) => Run(z, sigma, classes);

        private DenoiserOutput Run(Tensor z, double sigma, Tensor? classes)
        {
            if (!(sigma > 0)) throw new DiffuseException($"a flow network needs a noise level σ > 0 (got {sigma}).");
            using var scope = NewDisposeScope();
            double t = TimeOfSigma(sigma);
            var xt = z * Math.Sqrt((1 - t) * (1 - t) + t * t);
            var time = full(z.shape[0], (float)(EmbeddingTimesteps * t), dtype: ScalarType.Float32, device: z.device);
            var velocity = network.Call(xt, time, classes);
            var x0 = xt - t * velocity;
            var eps = xt + (1 - t) * velocity;
            return new DenoiserOutput(x0.MoveToOuterDisposeScope(), eps.MoveToOuterDisposeScope());
        }
    }
}
