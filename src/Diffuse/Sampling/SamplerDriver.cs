using Diffuse.Denoisers;
using static TorchSharp.torch;

namespace Diffuse.Sampling;

/// <summary>The variable a sampler keeps its state in between steps.</summary>
public enum StateScale
{
    /// <summary>x = x0 + σ·ε (Karras et al. 2022, §2), the variable of the σ-space samplers.</summary>
    VarianceExploding,
    /// <summary>z = x/√(1 + σ²) = √ᾱ·x0 + √(1 − ᾱ)·ε (Ho et al. 2020), the variable DDPM and DDIM are written in.</summary>
    VariancePreserving,
}

/// <summary>What one run of a sampler's update rule returns for a step: the next state and the x0 estimate it used.</summary>
/// <param name="Next">The state at the next level, in the rule's <see cref="ISamplerStepRule.Scale"/>.</param>
/// <param name="X0">The denoiser's x0 estimate at this step (reported to the callback).</param>
public readonly record struct SamplerStepResult(Tensor Next, Tensor X0);

/// <summary>
/// One run of a sampler's update rule. A rule is made for each run (<see cref="SamplerDefinition.CreateRule"/>), so
/// a multistep method's history is the run's, never the sampler's: the samplers stay stateless. Tensors the rule keeps
/// from one step to the next must be passed through <see cref="SamplerStepContext.Keep"/>; <see cref="IDisposable.Dispose"/>
/// releases them.
/// </summary>
public interface ISamplerStepRule : IDisposable
{
    /// <summary>The variable the rule's state is in.</summary>
    StateScale Scale { get; }

    /// <summary>One step from <see cref="SamplerStepContext.Sigma"/> to <see cref="SamplerStepContext.SigmaNext"/>.</summary>
    SamplerStepResult Step(SamplerStepContext step);
}

/// <summary>What a rule sees of step <see cref="Index"/>: the levels, its state, the denoiser, the step's noise and the options.</summary>
public sealed class SamplerStepContext
{
    private readonly ISigmaDenoiser _denoiser;
    private readonly StateScale _scale;

    /// <summary>
    /// Step <paramref name="index"/> of a run over <paramref name="levels"/> from <paramref name="state"/> (in
    /// <paramref name="scale"/>): what <see cref="SamplerDriver.Run"/> hands a rule, and what a test of a rule builds.
    /// </summary>
    public SamplerStepContext(int index, IReadOnlyList<double> levels, Tensor state, ISigmaDenoiser denoiser, StateScale scale, StepNoise noise, SamplerOptions options)
    {
        if (index < 0 || index + 1 >= levels.Count) throw new ArgumentOutOfRangeException(nameof(index), $"step {index} is outside the {levels.Count - 1} steps of the levels.");
        Index = index;
        Levels = levels;
        State = state;
        _denoiser = denoiser;
        _scale = scale;
        Noise = noise;
        Options = options;
    }

    /// <summary>The step, 0-based.</summary>
    public int Index { get; }

    /// <summary>Number of steps of the run.</summary>
    public int Count => Levels.Count - 1;

    /// <summary>Every level of the run, σ_0 … σ_N.</summary>
    public IReadOnlyList<double> Levels { get; }

    /// <summary>The level the step starts from, σ_i.</summary>
    public double Sigma => Levels[Index];

    /// <summary>The level the step lands on, σ_{i+1}.</summary>
    public double SigmaNext => Levels[Index + 1];

    /// <summary>The level after the next, or null on the last step.</summary>
    public double? SigmaAfterNext => Index + 2 < Levels.Count ? Levels[Index + 2] : null;

    /// <summary>The state at <see cref="Sigma"/>, in the rule's scale (at σ = ∞ the variance-exploding state holds z).</summary>
    public Tensor State { get; }

    /// <summary>The step's noise (step <see cref="Index"/> of <see cref="StepNoise"/>).</summary>
    public StepNoise Noise { get; }

    /// <summary>The options of the run.</summary>
    public SamplerOptions Options { get; }

    /// <summary>Standard normal noise of this step, shaped like <paramref name="like"/>.</summary>
    public Tensor Normal(Tensor like) => Noise.Normal(Index, like);

    /// <summary>D(state; σ): the denoiser at <paramref name="state"/> (in the rule's scale) and level <paramref name="sigma"/>.</summary>
    public DenoiserOutput Evaluate(Tensor state, double sigma)
    {
        var z = _scale == StateScale.VariancePreserving || double.IsPositiveInfinity(sigma) ? state : state / Math.Sqrt(1 + sigma * sigma);
        return _denoiser.DenoiseAtSigma(z, sigma);
    }

    /// <summary>A handle on <paramref name="tensor"/> that outlives this step's dispose scope (dispose it when dropped).</summary>
    public Tensor Keep(Tensor tensor) => tensor.alias().MoveToOuterDisposeScope();
}

/// <summary>
/// The one loop of every sampler: the same levels, noise, clipping, memory and reporting whatever the update rule.
/// DDPM and DDIM are rules on the σ grid of their trained timesteps like the others; the only difference is the variable
/// the state is kept in (<see cref="StateScale"/>), so each method does its arithmetic as its paper writes it. The input
/// <c>noise</c> is z ~ N(0, I) [B, ...] at σ_0 in the variance-preserving scale; a run that ends at σ = 0 returns x = z
/// there, and a run that ends above 0 (a segment of a path, or the way up of inversion) returns the variance-exploding
/// state x at its last level.
/// </summary>
public static class SamplerDriver
{
    /// <summary>
    /// Runs <paramref name="rule"/> over <paramref name="sigmas"/>: decreasing to 0 (sampling), decreasing to a level
    /// above 0 (a segment), or increasing (the encoder; rules that draw noise are refused there by
    /// <see cref="SigmaSamplers.Run"/>). <see cref="SamplerOptions.ClipX0"/> wraps the denoiser in
    /// <see cref="ClampedDenoiser.Clip(ISigmaDenoiser, double?)"/>, the one place x0 is clipped. Returns a tensor owned by the caller.
    /// </summary>
    public static Tensor Run(ISamplerStepRule rule, ISigmaDenoiser denoiser, Tensor noise, IReadOnlyList<double> sigmas, StepNoise stepNoise,
        SamplerOptions options, Action<SamplerStep>? onStep = null)
    {
        var levels = Levels(sigmas, options);
        var scale = rule.Scale;
        denoiser = ClampedDenoiser.Clip(denoiser, options.ClipX0);
        using var noGrad = no_grad();
        using var samplerScope = NewDisposeScope();
        var state = scale == StateScale.VariancePreserving || double.IsPositiveInfinity(levels[0])
            ? noise.alias()
            : noise * Math.Sqrt(1 + levels[0] * levels[0]);
        int count = levels.Length - 1;
        for (int i = 0; i < count; i++)
        {
            using var scope = NewDisposeScope();
            var (next, x0) = rule.Step(new SamplerStepContext(i, levels, state, denoiser, scale, stepNoise, options));
            double sigmaNext = levels[i + 1];
            if (onStep is not null)
            {
                using var reportScope = NewDisposeScope();
                var z = sigmaNext == 0 || scale == StateScale.VariancePreserving ? next : next / Math.Sqrt(1 + sigmaNext * sigmaNext);
                onStep(new SamplerStep(i + 1, count, -1, z, x0, levels[i]));
            }
            var kept = next.alias().MoveToOuterDisposeScope();
            state.Dispose();
            state = kept;
        }
        double last = levels[^1];
        if (scale == StateScale.VariancePreserving && last > 0) state = state * Math.Sqrt(1 + last * last);
        return state.MoveToOuterDisposeScope();
    }

    private static double[] Levels(IReadOnlyList<double> sigmas, SamplerOptions options)
    {
        SamplerTable.CheckValues(options);
        if (NoiseLevels.IsIncreasing(sigmas))
        {
            if (options.Churn is not null) throw new DiffuseException("stochastic churn adds noise on the way to the data; it cannot run from low to high noise.");
            return NoiseLevels.ValidateIncreasing(sigmas);
        }
        // A decreasing list that stops above 0 is a segment of a path (RePaint's blocks): run it as it is.
        if (sigmas.Count >= 2 && sigmas[^1] > 0) return NoiseLevels.Validate(sigmas)[..^1];
        return NoiseLevels.Validate(sigmas);
    }
}
