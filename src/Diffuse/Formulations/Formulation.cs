using Diffuse.Denoisers;
using Diffuse.Evaluation.Likelihoods;
using Diffuse.Parameterization;
using Diffuse.Schedules;
using static TorchSharp.torch;

namespace Diffuse.Formulations;

/// <summary>
/// One way of training a network and reading it as a denoiser: how noise levels are drawn in training, what the network
/// is conditioned on, the per-example loss, the denoiser it hands to the samplers, the discrete schedule it defines,
/// and the validation of its options. Each formulation is one type (<see cref="DdpmFormulation"/>,
/// <see cref="EdmFormulation"/>, …) registered in <see cref="FormulationRegistry.Entries"/>; its settings are part of the
/// <see cref="FormulationConfig"/> saved in config.json. Samplers, guidance, the bound and the ODE likelihood see only
/// the denoiser, so a new formulation works with all of them.
/// </summary>
public abstract class Formulation : IDisposable
{
    /// <summary>The formulation's settings as saved with the model.</summary>
    protected Formulation(FormulationConfig config) => Config = config;

    /// <summary>The settings this formulation was made from.</summary>
    public FormulationConfig Config { get; }

    /// <summary>
    /// Throws a <see cref="DiffuseException"/> naming the first invalid setting or the first choice of
    /// <paramref name="prediction"/>, <paramref name="schedule"/> or <paramref name="minSnrGamma"/> (the training's
    /// min-SNR weighting, when set) that the formulation cannot use.
    /// </summary>
    public abstract void Validate(Prediction prediction, ScheduleConfig schedule, double? minSnrGamma);

    /// <summary>
    /// The model's discrete schedule of noise levels, what the timestep samplers (DDPM, DDIM), the variational bound and
    /// the σ-space samplers' spacings read: <paramref name="schedule"/>'s β for DDPM, a fixed family of levels for others.
    /// </summary>
    public abstract NoiseSchedule CreateSchedule(ScheduleConfig schedule);

    /// <summary>The T the network's time embedding is built for (the range of its conditioning input is 0 … T).</summary>
    public abstract int NetworkTimesteps(ScheduleConfig schedule);

    /// <summary>Outputs per element of the data the network needs (2 when it also predicts its variances, else 1).</summary>
    public virtual int NetworkOutputFactor => 1;

    /// <summary>
    /// Whether the trainer draws this formulation's timesteps by importance (<see cref="TimestepImportance"/>) and hands
    /// them in <see cref="TrainingBatch.Importance"/>.
    /// </summary>
    public virtual bool DrawsTimestepsByImportance => false;

    /// <summary>The settings with defaults filled in from the data: σ_data is 1 for standardised columns and 0.5 for images in [−1, 1].</summary>
    public virtual FormulationConfig WithDataDefaults(double sigmaData) => Config;

    /// <summary>The denoiser the samplers, guidance and the likelihoods drive: the trained <paramref name="network"/> read in this formulation.</summary>
    public abstract IConditionalDenoiser CreateDenoiser(ConditionedNetwork network, NoiseSchedule schedule, Prediction prediction);

    /// <summary>
    /// The per-example training loss of one batch: draws each example's noise level from the batch's seeded streams,
    /// noises the data, runs the network and compares its output with the formulation's target.
    /// </summary>
    public abstract TrainingLoss Loss(TrainingBatch batch);

    /// <inheritdoc />
    public void Dispose()
    {
        Dispose(true);
        GC.SuppressFinalize(this);
    }

    /// <summary>Releases cached tensors.</summary>
    protected virtual void Dispose(bool disposing) { }
}

/// <summary>One training batch as a formulation's loss sees it; every tensor is on <see cref="Device"/>.</summary>
/// <param name="X0">The data [B, ...] in model units.</param>
/// <param name="Eps">Standard normal noise [B, ...] drawn for these examples.</param>
/// <param name="Positions">Each example's position in the global batch: with the step it decides every random draw.</param>
/// <param name="Classes">Class labels [B] (int64) after label dropout, or null.</param>
/// <param name="Network">The raw network: (input, conditioning [B] float32, classes) → output.</param>
/// <param name="Schedule">The model's discrete schedule.</param>
/// <param name="Prediction">The network's prediction target where the formulation has a choice (DDPM).</param>
/// <param name="Seed">The training seed.</param>
/// <param name="TimestepStream">The seeded stream of this step's discrete timesteps (drawn per position).</param>
/// <param name="NoiseLevelStream">The seeded stream of this step's continuous noise levels (drawn per position).</param>
/// <param name="MinSnrGamma">γ of min-SNR weighting, or null.</param>
/// <param name="Decoder">The data's decoder L_0 (discretised Gaussian for 8-bit images, Gaussian for tables).</param>
/// <param name="Importance">Timesteps and weights per global-batch position drawn by importance, or null.</param>
public sealed record TrainingBatch(Tensor X0, Tensor Eps, long[] Positions, Tensor? Classes, ConditionedNetwork Network, NoiseSchedule Schedule,
    Prediction Prediction, ulong Seed, ulong TimestepStream, ulong NoiseLevelStream, double? MinSnrGamma, IDataDecoder Decoder, (long[] Timesteps, double[] Weights)? Importance)
{
    /// <summary>The device of the batch's tensors.</summary>
    public Device Device => X0.device;
}

/// <summary>A batch's per-example training loss.</summary>
/// <param name="Loss">The loss to backpropagate [B] (with any importance weights).</param>
/// <param name="Recorded">The unweighted loss [B] that the importance sampler records.</param>
/// <param name="Quarter">Each example's quarter of the noise levels [B] (int64, 0 = lowest noise), for the logged quartile losses.</param>
public sealed record TrainingLoss(Tensor Loss, Tensor Recorded, Tensor Quarter)
{
    /// <summary>The number of noise-level quarters whose loss is logged.</summary>
    public const int Quartiles = 4;
}

/// <summary>The registered formulations: the one table that maps a <see cref="FormulationKind"/> to its type, name and description.</summary>
public static class FormulationRegistry
{
    /// <summary>One registered formulation.</summary>
    /// <param name="Kind">Its kind in <see cref="FormulationConfig"/>.</param>
    /// <param name="Name">Its name on the command line (<c>--formulation NAME</c>) and in config.json.</param>
    /// <param name="Description">One line for help texts.</param>
    /// <param name="Create">Makes the formulation from its settings.</param>
    /// <param name="Choice">How messages name the choice of this formulation (a <see cref="Param"/> marker, which a front end shows as its flag).</param>
    public sealed record Entry(FormulationKind Kind, string Name, string Description, Func<FormulationConfig, Formulation> Create, string Choice);

    /// <summary>Every formulation, in the order help texts list them.</summary>
    public static IReadOnlyList<Entry> Entries { get; } = new Entry[]
    {
        new(FormulationKind.Ddpm, "ddpm", "Ho et al. 2020: discrete timesteps, ε/x0/v targets; optionally learned variances (Nichol and Dhariwal 2021)", c => new DdpmFormulation(c),
            Param.Of("FormulationConfig.Kind = FormulationKind.Ddpm")),
        new(FormulationKind.Edm, "edm", "Karras et al. 2022: preconditioned denoiser trained on log-normal noise levels", c => new EdmFormulation(c),
            Param.Of("FormulationConfig.Kind = FormulationKind.Edm")),
        new(FormulationKind.Flow, "flow", "Lipman et al. 2023, Liu et al. 2023: straight path x_t = (1 − t)·x + t·ε, velocity target ε − x, logit-normal times", c => new FlowFormulation(c),
            Param.Of("FormulationConfig.Kind = FormulationKind.Flow")),
    };

    /// <summary>The formulation of <paramref name="config"/>; a <see cref="DiffuseException"/> for an unknown kind.</summary>
    public static Formulation Create(FormulationConfig config) => Of(config.Kind).Create(config);

    /// <summary>The registered entry of <paramref name="kind"/>; a <see cref="DiffuseException"/> for an unknown kind.</summary>
    public static Entry Of(FormulationKind kind) =>
        Entries.FirstOrDefault(e => e.Kind == kind) ?? throw new DiffuseException($"unknown formulation {(int)kind}: use {string.Join(", ", Entries.Select(e => e.Name))}.");

    /// <summary>The registered name of <paramref name="kind"/>.</summary>
    public static string Name(FormulationKind kind) => Entries.FirstOrDefault(e => e.Kind == kind)?.Name ?? kind.ToString().ToLowerInvariant();

    /// <summary>The kind registered as <paramref name="name"/> (case-insensitive), or null.</summary>
    public static FormulationKind? Parse(string name) =>
        Entries.FirstOrDefault(e => string.Equals(e.Name, name, StringComparison.OrdinalIgnoreCase))?.Kind;
}
