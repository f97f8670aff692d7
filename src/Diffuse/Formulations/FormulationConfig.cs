using Diffuse.Parameterization;
using Diffuse.Schedules;

namespace Diffuse.Formulations;

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

    /// <summary>
    /// Flow matching on the straight path x_t = (1 − t)·x + t·ε with the velocity target ε − x (Lipman et al. 2023;
    /// Liu et al. 2023; logit-normal times as in Esser et al. 2024; see <see cref="FlowFormulation"/>).
    /// </summary>
    Flow,
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
/// likelihood work on it. An EDM model ignores <see cref="Configuration.DiffusionModelConfig.Prediction"/> (the network's output
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

    /// <summary>DDPM (the default), EDM or flow matching.</summary>
    public FormulationKind Kind { get; init; } = FormulationKind.Ddpm;

    /// <summary>The EDM settings (σ_data, P_mean, P_std, σ range); required for EDM, null for DDPM.</summary>
    public EdmConfig? Edm { get; init; }

    /// <summary>The flow-matching settings (logit-normal times); filled with the defaults for a flow model, null for others.</summary>
    public FlowConfig? Flow { get; init; }

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

    /// <summary>Outputs per element of the data the network needs (see <see cref="Formulation.NetworkOutputFactor"/>).</summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public int NetworkOutputFactor => Create().NetworkOutputFactor;

    /// <summary>The formulation these settings describe (<see cref="FormulationRegistry.Create"/>).</summary>
    public Formulation Create() => FormulationRegistry.Create(this);

    /// <summary>
    /// Throws a <see cref="DiffuseException"/> naming the first invalid value or the first choice that does not fit
    /// with <paramref name="prediction"/>, <paramref name="schedule"/> or the training's <paramref name="minSnrGamma"/>
    /// (see <see cref="Formulation.Validate"/>).
    /// </summary>
    public void Validate(Prediction prediction, ScheduleConfig schedule, double? minSnrGamma = null)
    {
        if (!(HybridLambda > 0) || double.IsInfinity(HybridLambda))
            throw new DiffuseException($"{Param.Of("FormulationConfig.HybridLambda")} must be a positive number (got {HybridLambda}).");
        if (ImportanceSampling && !LearnedVariance)
            throw new DiffuseException($"importance sampling of timesteps applies to the hybrid loss of learned variances: add {Param.Of("FormulationConfig.LearnedVariance")}.");
        foreach (var (kind, settings) in Settings())
            if (settings is not null && kind != Kind)
                throw new DiffuseException($"{FormulationRegistry.Name(kind).ToUpperInvariant()} settings were given for a {FormulationRegistry.Name(Kind).ToUpperInvariant()} model; use {FormulationRegistry.Of(kind).Choice} or drop them.");
        Create().Validate(prediction, schedule, minSnrGamma);
    }

    /// <summary>Each formulation's own settings record, which only a model of that kind may carry.</summary>
    private IEnumerable<(FormulationKind Kind, object? Settings)> Settings()
    {
        yield return (FormulationKind.Edm, Edm);
        yield return (FormulationKind.Flow, Flow);
    }

    /// <summary>The model's discrete noise schedule (see <see cref="Formulation.CreateSchedule"/>).</summary>
    public NoiseSchedule CreateSchedule(ScheduleConfig schedule) => Create().CreateSchedule(schedule);

    /// <summary>The T the network's time embedding is built for (see <see cref="Formulation.NetworkTimesteps"/>).</summary>
    public int NetworkTimesteps(ScheduleConfig schedule) => Create().NetworkTimesteps(schedule);
}
