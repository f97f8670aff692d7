using Diffuse.Parameterization;
using Diffuse.Schedules;
using Diffuse.Training;

namespace Diffuse.Configuration;

/// <summary>The way a model's network is trained and read: which objective, noise levels and network outputs.</summary>
public enum FormulationKind
{
    /// <summary>
    /// Ho et al. 2020: discrete timesteps of the configured schedule drawn uniformly, the simple MSE on an ε, x0 or v
    /// target (see <see cref="Parameterization.Prediction"/>); optionally with learned variances (Nichol and Dhariwal 2021).
    /// </summary>
    Ddpm,

    /// <summary>
    /// Karras et al. 2022 ("EDM"): noise levels σ from a log-normal, the preconditioned denoiser
    /// D = c_skip·x + c_out·F(c_in·x; c_noise) and its λ(σ)-weighted loss (see <see cref="EdmTraining"/>).
    /// </summary>
    Edm,
}

/// <summary>
/// Which formulation of diffusion a model is trained and sampled in (issue 4); saved in config.json. The defaults are
/// DDPM with fixed variances and uniform timesteps, exactly the behaviour of models saved before this record existed
/// (a config.json without it loads as this default).
/// <para>
/// DDPM (Ho et al. 2020) trains a network on the discrete timesteps of the configured schedule; with
/// <see cref="LearnedVariance"/> the network also predicts the reverse-step variances, trained by the hybrid loss
/// L_simple + λ·L_vlb (Nichol and Dhariwal 2021, eq. 16), which improves the likelihood (the variational bound) and
/// ancestral sampling with few steps; <see cref="ImportanceSampling"/> then draws the timesteps with
/// p_t ∝ √E[L_t²] (§3.3, eq. 18).
/// </para>
/// <para>
/// EDM (Karras et al. 2022) trains the preconditioned denoiser on log-normal noise levels. Its network always sees a
/// unit-variance input and target, and the model's discrete schedule is <see cref="EdmConfig.Schedule"/> of the
/// configured number of timesteps (σ log-uniform from σ_min to σ_max), so every sampler, the bound and the ODE
/// likelihood work on it. An EDM model ignores <see cref="DiffusionModelConfig.Prediction"/> (the network's output
/// is F, neither ε nor x0 nor v), so it must stay ε, the default; it ignores the schedule's kind, which must stay the
/// default (linear, no custom β), and it cannot have zero terminal SNR (c_noise = ¼·ln σ is infinite at σ = ∞).
/// </para>
/// </summary>
public sealed record FormulationConfig
{
    /// <summary>
    /// The σ_max … σ_min range of an EDM model, ln(80/0.002) ≈ 10.6, is embedded as the network's "timestep"
    /// 250·c_noise = 62.5·ln σ: a network built for this many timesteps scales its input by 1000/4 = 250 (see
    /// <see cref="Models.TimeEmbedding"/>). Fed c_noise ∈ [−1.55, 1.10] unscaled, the sinusoidal embedding would turn
    /// its highest frequency by under three radians over the whole range and every lower one by almost nothing, leaving
    /// the network a nearly constant time input; scaled, the range spans about 660 embedding units, like the 0 … 999 of a
    /// DDPM network, so the embedding's frequencies resolve noise levels as they resolve DDPM timesteps.
    /// </summary>
    public const int EdmEmbeddingTimesteps = 4;

    /// <summary>DDPM (the default) or EDM.</summary>
    public FormulationKind Kind { get; init; } = FormulationKind.Ddpm;

    /// <summary>The EDM settings (σ_data, P_mean, P_std, σ range); required for EDM, null for DDPM.</summary>
    public EdmConfig? Edm { get; init; }

    /// <summary>
    /// DDPM only: the network also outputs, per element, the interpolation v of its reverse-step log-variance
    /// (Nichol and Dhariwal 2021, §3.1, eq. 15), so its output has twice the data's channels, and it is trained with the
    /// hybrid loss.
    /// </summary>
    public bool LearnedVariance { get; init; }

    /// <summary>λ of the hybrid loss L_simple + λ·L_vlb (Nichol and Dhariwal 2021, eq. 16); used with <see cref="LearnedVariance"/>.</summary>
    public double HybridLambda { get; init; } = HybridLoss.DefaultLambda;

    /// <summary>
    /// With <see cref="LearnedVariance"/>: draw timesteps by importance (Nichol and Dhariwal 2021, §3.3, eq. 18,
    /// <see cref="TimestepImportance"/>) from the history of each timestep's per-example training loss, weighting every
    /// example by 1/(T·p_t) so that the objective stays the same in expectation.
    /// </summary>
    public bool ImportanceSampling { get; init; }

    /// <summary>Whether this is the EDM formulation.</summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public bool IsEdm => Kind == FormulationKind.Edm;

    /// <summary>Outputs per element of the data the network needs: 2 with <see cref="LearnedVariance"/>, else 1.</summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public int NetworkOutputFactor => LearnedVariance ? 2 : 1;

    /// <summary>
    /// Throws a <see cref="DiffuseException"/> naming the first invalid value or the first choice that does not fit
    /// with <paramref name="prediction"/>, <paramref name="schedule"/> or <paramref name="training"/>.
    /// </summary>
    public void Validate(Prediction prediction, ScheduleConfig schedule, TrainingConfig training)
    {
        if (!Enum.IsDefined(Kind)) throw new DiffuseException($"unknown formulation {(int)Kind}: use ddpm or edm.");
        if (!(HybridLambda > 0) || double.IsInfinity(HybridLambda))
            throw new DiffuseException($"{Param.Of("FormulationConfig.HybridLambda")} must be a positive number (got {HybridLambda}).");
        if (ImportanceSampling && !LearnedVariance)
            throw new DiffuseException($"importance sampling of timesteps applies to the hybrid loss of learned variances: add {Param.Of("FormulationConfig.LearnedVariance")}.");
        if (!IsEdm)
        {
            if (Edm is not null) throw new DiffuseException($"EDM settings (σ_data, P_mean, P_std) were given for a DDPM model; use {Param.Of("FormulationConfig.Kind = FormulationKind.Edm")} or drop them.");
            return;
        }
        if (Edm is null) throw new DiffuseException("an EDM model needs its EDM settings (σ_data, P_mean, P_std, σ range).");
        Edm.Validate();
        if (LearnedVariance)
            throw new DiffuseException($"learned variances belong to DDPM's discrete reverse steps; EDM models keep the sampler's variances. Drop {Param.Of("FormulationConfig.LearnedVariance")} or use {Param.Of("FormulationConfig.Kind = FormulationKind.Ddpm")}.");
        if (prediction != Prediction.Epsilon)
            throw new DiffuseException($"an EDM network predicts the preconditioned F of Karras et al., not {prediction}: drop {Param.Of("DiffusionModelConfig.Prediction")}.");
        if (schedule.ZeroTerminalSnr)
            throw new DiffuseException($"an EDM network is conditioned on ln σ, which is infinite under zero terminal SNR: drop {Param.Of("ScheduleConfig.ZeroTerminalSnr")}.");
        if (schedule.Kind != ScheduleKind.Linear || schedule.Betas is not null)
            throw new DiffuseException($"an EDM model's noise levels are log-uniform from σ_min to σ_max; it cannot use the '{schedule.Kind.ToString().ToLowerInvariant()}' schedule: drop {Param.Of("ScheduleConfig.Kind")}.");
        if (schedule.Timesteps < 2) throw new DiffuseException($"an EDM schedule needs at least two timesteps (got {schedule.Timesteps}).");
        if (training.MinSnrGamma is not null)
            throw new DiffuseException($"min-SNR weighting applies to DDPM targets; EDM weights its loss by λ(σ) = (σ² + σ_data²)/(σ·σ_data)²: drop {Param.Of("TrainingConfig.MinSnrGamma")}.");
    }

    /// <summary>
    /// The model's discrete noise schedule: <paramref name="schedule"/>'s for DDPM; for EDM <see cref="EdmConfig.Schedule"/>
    /// of its number of timesteps.
    /// </summary>
    public NoiseSchedule CreateSchedule(ScheduleConfig schedule) =>
        IsEdm ? Edm!.Schedule(schedule.Timesteps) : NoiseSchedule.Create(schedule);

    /// <summary>
    /// The T the network's time embedding is built for: the schedule's timesteps for DDPM (which the network receives);
    /// <see cref="EdmEmbeddingTimesteps"/> for EDM, whose network receives c_noise.
    /// </summary>
    public int NetworkTimesteps(ScheduleConfig schedule) => IsEdm ? EdmEmbeddingTimesteps : schedule.Timesteps;
}
