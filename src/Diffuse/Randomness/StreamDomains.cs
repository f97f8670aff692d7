namespace Diffuse.Randomness;

/// <summary>
/// Which key space a random-stream domain lives in: domains of one space are combined with the same seed and index, so
/// their values (and the ranges of consecutive streams some of them use) must be distinct; domains of different spaces
/// never meet.
/// </summary>
public enum StreamSpace
{
    /// <summary>Keyed by a sampling seed and the sample index (samplers and editing).</summary>
    Sampling,
    /// <summary>The domain argument of the trainer's <c>BatchPlan.Stream(counter, domain)</c>, keyed by the training seed.</summary>
    Training,
    /// <summary>Keyed by the seed of a variational bound and the data row.</summary>
    VariationalBound,
    /// <summary>Keyed by the seed of an ODE likelihood and the data row.</summary>
    OdeLikelihood,
    /// <summary>The streams of the low-dimensional sample metrics and the kernel distance, keyed by the evaluation seed.</summary>
    SampleMetrics,
    /// <summary>Subsets of real images chosen by the image evaluation, keyed by the evaluation seed.</summary>
    ImageEvaluation,
    /// <summary>The split of a table into training and held-out rows, keyed by the fixed <c>TabularSource.SplitSeed</c>.</summary>
    TableSplit,
    /// <summary>The order of an npm data set's images, keyed by the fixed <c>NpmDatasets.OrderSeed</c>.</summary>
    NpmOrder,
    /// <summary>The feature classifier's shuffles, keyed by its training seed.</summary>
    FeatureClassifier,
}

/// <summary>One registered random-stream domain: its name, value, key space, how many consecutive streams it may use, and what it draws.</summary>
/// <param name="Name">The constant's name in <see cref="StreamDomains"/>.</param>
/// <param name="Value">Its value (negative metric streams as their two's-complement bits).</param>
/// <param name="Space">The key space it shares with other domains.</param>
/// <param name="Span">How many consecutive stream values from <paramref name="Value"/> it may use (1 for a single stream).</param>
/// <param name="Purpose">What it draws.</param>
public sealed record StreamDomainInfo(string Name, ulong Value, StreamSpace Space, ulong Span, string Purpose);

/// <summary>
/// The registry of every random-stream domain of the library: each random value is <see cref="SeededNoise"/> of (seed,
/// stream, index), and the stream says what it is for. A new random draw takes a new entry here (and in
/// <see cref="All"/>), never a literal at the call site. The values are those the code used before the registry
/// existed, so that every result stays bit-identical; a test checks that the domains of one space do not overlap.
/// </summary>
public static class StreamDomains
{
    // ---- Sampling: seed = the sampling seed, index = the sample index. ----

    /// <summary>The initial noise z_T of a sampler (and the start of SDEdit, inpainting and interpolation from seeds).</summary>
    public const ulong InitialNoise = 0;
    /// <summary>The noise of sampler step k is stream <see cref="FirstStepNoise"/> + k.</summary>
    public const ulong FirstStepNoise = 1;
    /// <summary>RePaint's repeated passes over a block of levels: a seed of its own per pass (<see cref="NoiseDomains.Seed"/>).</summary>
    public const ulong RePaintSteps = 0x5245_5041_0001;
    /// <summary>RePaint's jumps back up to a higher level: a seed of its own per jump (<see cref="NoiseDomains.Seed"/>).</summary>
    public const ulong RePaintJumps = 0x5245_5041_0002;

    // ---- Training: the domain of BatchPlan.Stream(step or epoch, domain); seed = the training seed. ----

    /// <summary>Label dropout for classifier-free guidance.</summary>
    public const int TrainingLabelDropout = 0;
    /// <summary>The DDPM timesteps of a batch (or the importance sampler's uniforms).</summary>
    public const int TrainingTimesteps = 1;
    /// <summary>The training noise ε.</summary>
    public const int TrainingNoise = 2;
    /// <summary>The per-epoch permutations of the data rows.</summary>
    public const int TrainingPermutation = 3;
    /// <summary>The continuous noise levels of a training step: EDM's log-normal σ and flow matching's logit-normal t.</summary>
    public const int TrainingEdmSigma = 4;
    /// <summary>"drop": XORed into the label-dropout stream of a step to reseed libtorch's dropout masks for a batch shard.</summary>
    public const ulong TrainingDropoutMasks = 0x64726F70;

    // ---- Variational bound: seed = the bound's seed, index = the data row. ----

    /// <summary>The noise of timestep index n is stream <see cref="BoundFirstTimestepNoise"/> + n (n &lt; T).</summary>
    public const ulong BoundFirstTimestepNoise = 0;
    /// <summary>"strat": the stratified timestep draws of a sampled bound.</summary>
    public const ulong BoundStrata = 0x7374726174;

    // ---- ODE likelihood: seed = the likelihood's seed, index = the data row. ----

    /// <summary>The uniform dequantisation of 8-bit data.</summary>
    public const ulong OdeDequantization = 1;
    /// <summary>Hutchinson probe k is stream <see cref="OdeFirstProbe"/> + k.</summary>
    public const ulong OdeFirstProbe = 2;

    // ---- Sample metrics: seed = the evaluation seed. ----

    /// <summary>The subset of generated points when there are more than training points.</summary>
    public const int MetricsGeneratedSubset = 0;
    /// <summary>The training subsets of the noise floors: split s is stream <see cref="MetricsFirstTrainingSubset"/> + s, or the one permutation of stream 1.</summary>
    public const int MetricsFirstTrainingSubset = 1;
    /// <summary>The projection directions of the sliced Wasserstein distance.</summary>
    public const int MetricsSlicedDirections = -1;
    /// <summary>The reference subset of the KDE bandwidth.</summary>
    public const int MetricsBandwidthSubset = -3;
    /// <summary>"kids": the row subsets of the kernel (inception) distance.</summary>
    public const ulong KernelDistanceSubsets = 0x6B696473;

    // ---- Image evaluation: seed = the evaluation seed. ----

    /// <summary>"prec": the reference subset of precision and recall.</summary>
    public const ulong PrecisionRecallReference = 0x70726563;
    /// <summary>"refe": the reference test images of the image-quality report.</summary>
    public const ulong ImageReference = 0x72656665;
    /// <summary>"floo": the training images of the noise floor.</summary>
    public const ulong ImageFloor = 0x666C6F6F;
    /// <summary>"nlls": the test images of the likelihood.</summary>
    public const ulong ImageLikelihood = 0x6E6C6C73;

    // ---- Data. ----

    /// <summary>"flip": horizontal-flip augmentation of a training batch (a seed of its own per step, keyed by the training seed).</summary>
    public const ulong ImageFlip = 0x666C6970;
    /// <summary>The training/held-out split of a table (with <c>TabularSource.SplitSeed</c>).</summary>
    public const ulong TabularSplit = 0;
    /// <summary>The order of npm data sets' training images (with <c>NpmDatasets.OrderSeed</c>); the test images use <see cref="NpmTestOrder"/>.</summary>
    public const ulong NpmTrainingOrder = 0;
    /// <summary>The order of npm data sets' test images.</summary>
    public const ulong NpmTestOrder = 1;
    /// <summary>The feature classifier's epoch e shuffles with stream <see cref="ClassifierFirstEpoch"/> + e.</summary>
    public const ulong ClassifierFirstEpoch = 0;

    private const ulong Counted = 1UL << 31;

    /// <summary>Every domain above, with its key space and purpose.</summary>
    public static IReadOnlyList<StreamDomainInfo> All { get; } =
    [
        new(nameof(InitialNoise), InitialNoise, StreamSpace.Sampling, 1, "initial noise of a sampler"),
        new(nameof(FirstStepNoise), FirstStepNoise, StreamSpace.Sampling, Counted, "noise of sampler step k (stream 1 + k)"),
        new(nameof(RePaintSteps), RePaintSteps, StreamSpace.Sampling, 1, "seed of RePaint's passes"),
        new(nameof(RePaintJumps), RePaintJumps, StreamSpace.Sampling, 1, "seed of RePaint's jumps"),
        new(nameof(TrainingLabelDropout), TrainingLabelDropout, StreamSpace.Training, 1, "label dropout"),
        new(nameof(TrainingTimesteps), TrainingTimesteps, StreamSpace.Training, 1, "training timesteps"),
        new(nameof(TrainingNoise), TrainingNoise, StreamSpace.Training, 1, "training noise"),
        new(nameof(TrainingPermutation), TrainingPermutation, StreamSpace.Training, 1, "per-epoch permutations"),
        new(nameof(TrainingEdmSigma), TrainingEdmSigma, StreamSpace.Training, 1, "continuous noise levels: EDM's σ and flow matching's t"),
        new(nameof(TrainingDropoutMasks), TrainingDropoutMasks, StreamSpace.Training, 1, "reseeding of the dropout masks (XOR tag)"),
        new(nameof(BoundFirstTimestepNoise), BoundFirstTimestepNoise, StreamSpace.VariationalBound, Counted, "noise of timestep n (stream n)"),
        new(nameof(BoundStrata), BoundStrata, StreamSpace.VariationalBound, 1, "stratified timestep draws"),
        new(nameof(OdeDequantization), OdeDequantization, StreamSpace.OdeLikelihood, 1, "uniform dequantisation"),
        new(nameof(OdeFirstProbe), OdeFirstProbe, StreamSpace.OdeLikelihood, Counted, "Hutchinson probe k (stream 2 + k)"),
        new(nameof(MetricsGeneratedSubset), unchecked((ulong)MetricsGeneratedSubset), StreamSpace.SampleMetrics, 1, "subset of generated points"),
        new(nameof(MetricsFirstTrainingSubset), unchecked((ulong)MetricsFirstTrainingSubset), StreamSpace.SampleMetrics, 1 << 20, "training subsets of the floors (up to 2^20 splits)"),
        new(nameof(MetricsSlicedDirections), unchecked((ulong)(long)MetricsSlicedDirections), StreamSpace.SampleMetrics, 1, "sliced-W2 directions"),
        new(nameof(MetricsBandwidthSubset), unchecked((ulong)(long)MetricsBandwidthSubset), StreamSpace.SampleMetrics, 1, "KDE bandwidth subset"),
        new(nameof(KernelDistanceSubsets), KernelDistanceSubsets, StreamSpace.SampleMetrics, 1, "kernel distance subsets"),
        new(nameof(PrecisionRecallReference), PrecisionRecallReference, StreamSpace.ImageEvaluation, 1, "precision/recall reference subset"),
        new(nameof(ImageReference), ImageReference, StreamSpace.ImageEvaluation, 1, "reference test images"),
        new(nameof(ImageFloor), ImageFloor, StreamSpace.ImageEvaluation, 1, "floor training images"),
        new(nameof(ImageLikelihood), ImageLikelihood, StreamSpace.ImageEvaluation, 1, "likelihood test images"),
        new(nameof(ImageFlip), ImageFlip, StreamSpace.Training, 1, "flip augmentation"),
        new(nameof(TabularSplit), TabularSplit, StreamSpace.TableSplit, 1, "table split (fixed seed)"),
        new(nameof(NpmTrainingOrder), NpmTrainingOrder, StreamSpace.NpmOrder, 1, "npm training order (fixed seed)"),
        new(nameof(NpmTestOrder), NpmTestOrder, StreamSpace.NpmOrder, 1, "npm test order (fixed seed)"),
        new(nameof(ClassifierFirstEpoch), ClassifierFirstEpoch, StreamSpace.FeatureClassifier, Counted, "feature classifier's shuffles (training seed)"),
    ];
}
