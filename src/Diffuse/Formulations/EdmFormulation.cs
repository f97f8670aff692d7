using Diffuse.Denoisers;
using Diffuse.Parameterization;
using Diffuse.Randomness;
using Diffuse.Schedules;
using static TorchSharp.torch;

namespace Diffuse.Formulations;

/// <summary>
/// Karras et al. 2022 ("EDM", eq. 8 with Table 1): noise levels with ln σ ~ N(P_mean, P_std²), the preconditioned
/// denoiser D(x; σ) = c_skip·x + c_out·F(c_in·x; c_noise) (<see cref="EdmPreconditioning"/>, the one place that composes
/// it, for training and sampling alike) and its λ(σ)-weighted loss (<see cref="EdmTraining"/>). The model's discrete
/// schedule is <see cref="EdmConfig.Schedule"/>, so the timestep samplers and the bound work on it; the denoiser is
/// <see cref="EdmDenoiser"/>.
/// </summary>
public sealed class EdmFormulation : Formulation
{
    /// <summary>EDM with the settings of <paramref name="config"/> (its <see cref="FormulationConfig.Edm"/>).</summary>
    public EdmFormulation(FormulationConfig config) : base(config) { }

    private EdmConfig Settings => Config.Edm ?? throw new DiffuseException("an EDM model needs its EDM settings (σ_data, P_mean, P_std, σ range).");

    /// <inheritdoc />
    public override FormulationConfig WithDataDefaults(double sigmaData) =>
        Config.Edm is null ? Config with { Edm = new EdmConfig(SigmaData: sigmaData) } : Config;

    /// <inheritdoc />
    public override void Validate(Prediction prediction, ScheduleConfig schedule, double? minSnrGamma)
    {
        Settings.Validate();
        if (Config.LearnedVariance)
            throw new DiffuseException($"learned variances belong to DDPM's discrete reverse steps; EDM models keep the sampler's variances. Drop {Param.Of("FormulationConfig.LearnedVariance")} or use {Param.Of("FormulationConfig.Kind = FormulationKind.Ddpm")}.");
        if (prediction != Prediction.Epsilon)
            throw new DiffuseException($"an EDM network predicts the preconditioned F of Karras et al., not {prediction}: drop {Param.Of("DiffusionModelConfig.Prediction")}.");
        if (schedule.ZeroTerminalSnr)
            throw new DiffuseException($"an EDM network is conditioned on ln σ, which is infinite under zero terminal SNR: drop {Param.Of("ScheduleConfig.ZeroTerminalSnr")}.");
        if (schedule.Kind != ScheduleKind.Linear || schedule.Betas is not null)
            throw new DiffuseException($"an EDM model's noise levels are log-uniform from σ_min to σ_max; it cannot use the '{schedule.Kind.ToString().ToLowerInvariant()}' schedule: drop {Param.Of("ScheduleConfig.Kind")}.");
        if (schedule.Timesteps < 2) throw new DiffuseException($"an EDM schedule needs at least two timesteps (got {schedule.Timesteps}).");
        if (minSnrGamma is not null)
            throw new DiffuseException($"min-SNR weighting applies to DDPM targets; EDM weights its loss by λ(σ) = (σ² + σ_data²)/(σ·σ_data)²: drop {Param.Of("TrainingConfig.MinSnrGamma")}.");
    }

    /// <inheritdoc />
    public override NoiseSchedule CreateSchedule(ScheduleConfig schedule) => Settings.Schedule(schedule.Timesteps);

    /// <inheritdoc />
    public override int NetworkTimesteps(ScheduleConfig schedule) => FormulationConfig.EdmEmbeddingTimesteps;

    /// <inheritdoc />
    public override IConditionalDenoiser CreateDenoiser(ConditionedNetwork network, NoiseSchedule schedule, Prediction prediction) =>
        new EdmDenoiser(network, schedule, Settings);

    /// <summary>
    /// Karras et al. 2022, eq. 8 with Table 1: ln σ ~ N(P_mean, P_std²) from the batch's noise-level stream, the
    /// preconditioned network's λ(σ)-weighted error; the recorded loss is the same tensor, and each example's quarter
    /// is its quarter of [ln σ_min, ln σ_max] (low noise first).
    /// </summary>
    public override TrainingLoss Loss(TrainingBatch batch)
    {
        var edm = Settings;
        var normal = SeededNoise.Normal(batch.Seed, batch.NoiseLevelStream, batch.Positions, ReadOnlySpan<long>.Empty, batch.Device);
        var sigma = EdmTraining.SampleSigma(normal, edm);
        var noise = EdmTraining.Noise(batch.Eps, sigma);
        var (input, conditioning) = EdmPreconditioning.NetworkInputs(batch.X0 + noise, sigma, edm.SigmaData);
        var output = batch.Network.Call(input, conditioning, batch.Classes);
        var perExample = EdmTraining.Loss(output, batch.X0, noise, sigma, edm.SigmaData);
        double logMin = Math.Log(edm.SigmaMin), logMax = Math.Log(edm.SigmaMax);
        var quarter = ((sigma.log() - logMin) * (TrainingLoss.Quartiles / (logMax - logMin))).floor().clamp(0, TrainingLoss.Quartiles - 1).to_type(ScalarType.Int64);
        return new TrainingLoss(perExample, perExample, quarter);
    }
}
