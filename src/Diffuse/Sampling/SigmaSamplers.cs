using Diffuse.Denoisers;
using Diffuse.Parameterization;
using Diffuse.Randomness;
using Diffuse.Schedules;
using static TorchSharp.torch;

namespace Diffuse.Sampling;

/// <summary>
/// The per-step noise of one batch: step i of a sampler draws stream i + 1 of <see cref="SeededNoise"/> (stream 0 is
/// the initial noise) for rows <see cref="First"/> … , so sample j's noise depends only on (seed, j).
/// </summary>
/// <param name="Seed">The sampling seed.</param>
/// <param name="First">The sample index of the batch's first row.</param>
/// <param name="StepOffset">
/// Steps of the full path that this run skips: step i draws the noise of step i + offset, so a run over the last levels
/// of a path (SDEdit, <see cref="Editing.ImageToImage"/>) draws what the full run would at those levels.
/// </param>
public readonly record struct StepNoise(ulong Seed, long First, int StepOffset = 0)
{
    /// <summary>Standard normal noise for step <paramref name="step"/> (0-based) with the shape, dtype and device of <paramref name="like"/>.</summary>
    public Tensor Normal(int step, Tensor like) =>
        SeededNoise.Normal(Seed, StreamDomains.FirstStepNoise + (ulong)(step + StepOffset), First, (int)like.shape[0], like.shape.AsSpan(1), like.device).to_type(like.dtype);
}

/// <summary>
/// Stochastic churn (Karras et al. 2022, Algorithm 2, lines 4–6): before step i, when S_tmin ≤ σ_i ≤ S_tmax, the state
/// is lifted to σ̂ = σ_i·(1 + γ), γ = min(S_churn/N, √2 − 1), by adding fresh noise of variance S_noise²·(σ̂² − σ_i²).
/// </summary>
/// <param name="SChurn">S_churn: the total amount of added noise over N steps (0 turns churn off).</param>
/// <param name="STmin">S_tmin: the lowest noise level that is churned.</param>
/// <param name="STmax">S_tmax: the highest noise level that is churned.</param>
/// <param name="SNoise">S_noise: scale of the added noise (slightly above 1 counters the denoiser's loss of detail).</param>
public sealed record StochasticChurn(double SChurn, double STmin = 0, double STmax = double.PositiveInfinity, double SNoise = 1)
{
    /// <summary>Throws a <see cref="DiffuseException"/> naming the first invalid value.</summary>
    public void Validate()
    {
        if (!(SChurn >= 0) || double.IsInfinity(SChurn)) throw new DiffuseException($"S_churn must be zero or positive (got {SChurn}).");
        if (!(STmin >= 0) || !(STmax >= STmin)) throw new DiffuseException($"the churn range needs 0 ≤ S_tmin ≤ S_tmax (got {STmin} … {STmax}).");
        if (!(SNoise > 0) || double.IsInfinity(SNoise)) throw new DiffuseException($"S_noise must be positive (got {SNoise}).");
    }

    /// <summary>γ_i for a step at noise level <paramref name="sigma"/> of <paramref name="steps"/> steps (0 at σ = ∞: pure noise needs no churn).</summary>
    public double Gamma(double sigma, int steps) =>
        sigma >= STmin && sigma <= STmax && !double.IsPositiveInfinity(sigma) ? Math.Min(SChurn / steps, Math.Sqrt(2) - 1) : 0;
}

/// <summary>
/// Samplers that integrate the probability-flow ODE or the reverse SDE in the variance-exploding variable (Karras et al.
/// 2022, §2–4), driving any <see cref="ISigmaDenoiser"/>. Notation map: σ_0 &gt; … &gt; σ_N = 0 the noise levels;
/// x = z/√ᾱ = x0 + σ·ε the state; D = D(x; σ) the x0 estimate; ε̂ = (x − D)/σ, which is also dx/dσ along the ODE
/// (Karras et al. 2022, eq. 1 with the score of eq. 3 and σ(t) = t); λ = −log σ (half the log-SNR) and h = λ_{i+1} − λ_i, so
/// e^(−h) = σ_{i+1}/σ_i. All samplers share one signature: the denoiser, the initial noise z ~ N(0, I) [B, ...] (the
/// state at σ_0 in the variance-preserving scale, so x_0 = z·√(1 + σ_0²)), the levels, the per-step noise, the options
/// (<see cref="SamplerOptions.ClipX0"/>, <see cref="SamplerOptions.Churn"/>) and a callback. They keep no state between
/// calls: multistep history is a local variable. The last step always lands on σ = 0 with x = D (the exact limit of
/// every update as σ_{i+1} → 0), and when σ_0 = +∞ (zero terminal SNR) the first step is the exact first-order step from
/// pure noise, x_1 = D + σ_1·ε̂ (D and ε̂ stay finite there although x does not).
/// <para>
/// The deterministic samplers also run backwards, from low to high noise (an increasing list of positive levels, see
/// <see cref="NoiseLevels.ValidateIncreasing"/>): every update above is a quadrature of the same ODE over [σ_i, σ_{i+1}]
/// and holds for either sign of σ_{i+1} − σ_i (h &lt; 0 in the exponential integrators). Run upwards they are the
/// encoder of DDIM inversion (Song et al. 2021, §4.3; see <see cref="Editing.Inversion"/>), and they return the state x
/// at the last level, in the variance-exploding scale. Likewise a decreasing list that stops above σ = 0 is run as
/// a segment of a longer path and returns x at its last level (RePaint's blocks, <see cref="Editing.Inpainting"/>).
/// </para>
/// </summary>
public static class SigmaSamplers
{
    /// <summary>
    /// Euler's method on the probability-flow ODE (Karras et al. 2022, Algorithm 2 without the Heun correction):
    /// x_{i+1} = x̂ + (σ_{i+1} − σ̂)·ε̂ = D + σ_{i+1}·ε̂, with optional churn. Without churn it is DDIM with η = 0 on the same
    /// levels (Song et al. 2021, §4.3: DDIM is Euler's method in σ). One evaluation per step.
    /// </summary>
    public static Tensor Euler(ISigmaDenoiser denoiser, Tensor noise, IReadOnlyList<double> sigmas, StepNoise stepNoise,
        SamplerOptions options, Action<SamplerStep>? onStep = null) =>
        EulerOrHeun(denoiser, noise, sigmas, stepNoise, options, onStep, heun: false);

    /// <summary>
    /// Heun's second-order method on the probability-flow ODE (Karras et al. 2022, Algorithm 1; with
    /// <see cref="SamplerOptions.Churn"/>, Algorithm 2): an Euler step to σ_{i+1}, then the trapezoidal correction
    /// x_{i+1} = x̂ + (σ_{i+1} − σ̂)·(ε̂ + ε̂')/2 with ε̂' evaluated at the Euler point. Two evaluations per step, one on the
    /// last step to σ = 0 (and on a step from σ = ∞).
    /// </summary>
    public static Tensor Heun(ISigmaDenoiser denoiser, Tensor noise, IReadOnlyList<double> sigmas, StepNoise stepNoise,
        SamplerOptions options, Action<SamplerStep>? onStep = null) =>
        EulerOrHeun(denoiser, noise, sigmas, stepNoise, options, onStep, heun: true);

    /// <summary>
    /// Euler ancestral: the ancestral step of Ho et al. 2020 (Algorithm 2) written in σ-space, as in k-diffusion. The Bayes
    /// posterior of x_{i+1} given x_i and D is N(D + σ_down·ε̂, σ_up²) with σ_down = σ_{i+1}²/σ_i and
    /// σ_up = σ_{i+1}·√(1 − σ_{i+1}²/σ_i²); on the trained timesteps this is DDPM with σ² = β̃. One evaluation per step.
    /// </summary>
    public static Tensor EulerAncestral(ISigmaDenoiser denoiser, Tensor noise, IReadOnlyList<double> sigmas, StepNoise stepNoise,
        SamplerOptions options, Action<SamplerStep>? onStep = null)
    {
        var levels = Levels(sigmas, options);
        denoiser = ClampedDenoiser.Clip(denoiser, options.ClipX0);
        using var noGrad = no_grad();
        using var samplerScope = NewDisposeScope();
        var x = Initial(noise, levels[0]);
        int count = levels.Length - 1;
        for (int i = 0; i < count; i++)
        {
            using var scope = NewDisposeScope();
            double sigma = levels[i], sigmaNext = levels[i + 1];
            var (x0, eps) = Evaluate(denoiser, x, sigma);
            Tensor next;
            if (sigmaNext == 0) next = x0;
            else
            {
                double ratio = sigmaNext / sigma;
                double sigmaUp = sigmaNext * Math.Sqrt(1 - ratio * ratio), sigmaDown = sigmaNext * ratio;
                next = x0 + sigmaDown * eps + sigmaUp * stepNoise.Normal(i, x0);
            }
            x = Advance(x, next, onStep, i, count, sigma, sigmaNext, x0);
        }
        return x.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// DPM-Solver++(2M) (Lu et al. 2022, DPM-Solver++, Algorithm 2): the exponential integrator of the data-prediction ODE,
    /// x_{i+1} = (σ_{i+1}/σ_i)·x_i + (1 − e^(−h))·[(1 + 1/(2r))·D_i − 1/(2r)·D_{i−1}] with r = h_{i−1}/h_i; the first step
    /// (no history) is first order, i.e. DDIM. Second order, one evaluation per step.
    /// </summary>
    public static Tensor DpmSolver2M(ISigmaDenoiser denoiser, Tensor noise, IReadOnlyList<double> sigmas, StepNoise stepNoise,
        SamplerOptions options, Action<SamplerStep>? onStep = null) =>
        DpmSolverMultistep(denoiser, noise, sigmas, options, onStep, order: 2);

    /// <summary>
    /// DPM-Solver++(3M) (Lu et al. 2022, DPM-Solver++, Algorithm 2 carried to third order): the exact solution
    /// x_{i+1} = e^(−h)·x_i + σ_{i+1}·∫ e^λ·D dλ with D expanded to second order in λ,
    /// x_{i+1} = e^(−h)·x_i + φ0·D_i + φ1·D'_i + φ2·D''_i with φ0 = 1 − e^(−h), φ1 = h − φ0,
    /// φ2 = h²/2 − φ1 (the integrals of e^(λ − λ_{i+1})·(λ − λ_i)^k/k!), and D', D'' the first and second derivatives in λ
    /// of the quadratic through the last three data predictions (Newton divided differences, D'' = 2·D[λ_i, λ_{i−1},
    /// λ_{i−2}]). Warm-up steps use the 1st and 2nd-order updates, and the step before the last uses at most 2nd order
    /// ("lower-order final steps"). Third order, one evaluation per step. (Some public implementations weight the
    /// second divided difference by φ2 instead of 2·φ2; that halves D'' and measures as second order on the Gaussian test.)
    /// </summary>
    public static Tensor DpmSolver3M(ISigmaDenoiser denoiser, Tensor noise, IReadOnlyList<double> sigmas, StepNoise stepNoise,
        SamplerOptions options, Action<SamplerStep>? onStep = null) =>
        DpmSolverMultistep(denoiser, noise, sigmas, options, onStep, order: 3);

    /// <summary>
    /// SDE-DPM-Solver++(2M) (Lu et al. 2022, DPM-Solver++: the counterpart of Algorithm 2 for the reverse SDE in
    /// data-prediction form, midpoint variant): x_{i+1} = e^(−2h)·x_i + (1 − e^(−2h))·D_i + ½·(1 − e^(−2h))·(D_i − D_{i−1})/r
    /// + σ_{i+1}·√(1 − e^(−2h))·ξ_i, where 1 − e^(−2h) = ∫ 2·e^(2(λ − λ_{i+1})) dλ weighs D exactly and the noise term
    /// is the exact variance of the linear SDE over the step. One evaluation per step.
    /// </summary>
    public static Tensor DpmSolver2MSde(ISigmaDenoiser denoiser, Tensor noise, IReadOnlyList<double> sigmas, StepNoise stepNoise,
        SamplerOptions options, Action<SamplerStep>? onStep = null)
    {
        var levels = Levels(sigmas, options);
        denoiser = ClampedDenoiser.Clip(denoiser, options.ClipX0);
        using var noGrad = no_grad();
        using var samplerScope = NewDisposeScope();
        var x = Initial(noise, levels[0]);
        int count = levels.Length - 1;
        (double Lambda, Tensor X0)? previous = null;
        for (int i = 0; i < count; i++)
        {
            using var scope = NewDisposeScope();
            double sigma = levels[i], sigmaNext = levels[i + 1];
            var (x0, _) = Evaluate(denoiser, x, sigma);
            Tensor next;
            if (sigmaNext == 0) next = x0;
            else
            {
                // e^(−2h) = (σ_{i+1}/σ_i)²; from σ = ∞ it is 0 and the step draws x_1 ~ N(D, σ_1²).
                double ratio = sigmaNext / sigma, decay = ratio * ratio, gain = 1 - decay;
                next = double.IsPositiveInfinity(sigma) ? x0 * gain : decay * x + gain * x0;
                if (previous is { } p)
                {
                    double h = Math.Log(sigma / sigmaNext), hLast = -Math.Log(sigma) - p.Lambda;
                    next = next + 0.5 * gain * h / hLast * (x0 - p.X0);
                }
                next = next + sigmaNext * Math.Sqrt(gain) * stepNoise.Normal(i, x0);
            }
            previous?.X0.Dispose();
            previous = double.IsPositiveInfinity(sigma) ? null : (-Math.Log(sigma), Keep(x0));
            x = Advance(x, next, onStep, i, count, sigma, sigmaNext, x0);
        }
        previous?.X0.Dispose();
        return x.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// UniPC (Zhao et al. 2023, §3: the UniP-2 predictor with the UniC corrector, data prediction, B(h) = e^h − 1, the
    /// "bh2" variant). The predictor is DPM-Solver++(2M). After each step the model's evaluation at the new point, which the
    /// next step needs anyway, also corrects that point: with φ0 = 1 − e^(−h), φ1 = h − φ0, φ2 = h²/2 − φ1,
    /// x^c_{i+1} = e^(−h)·x_i + φ0·D_i + φ0·Σ_m a_m·(D(t_m) − D_i)/r_m over the previous point (r_1 = (λ_{i−1} − λ_i)/h)
    /// and the new one (r_2 = 1), where a solves Σ_m a_m·r_m^(k−1) = k!·φk/(h^k·φ0) for k = 1, 2 (a = ½ for the first
    /// step's single point). The corrected point continues the trajectory while the evaluation at the uncorrected point
    /// is reused, so the corrector costs nothing; the order rises from 2 to 3. One evaluation per step.
    /// </summary>
    public static Tensor UniPc(ISigmaDenoiser denoiser, Tensor noise, IReadOnlyList<double> sigmas, StepNoise stepNoise,
        SamplerOptions options, Action<SamplerStep>? onStep = null)
    {
        var levels = Levels(sigmas, options);
        denoiser = ClampedDenoiser.Clip(denoiser, options.ClipX0);
        using var noGrad = no_grad();
        using var samplerScope = NewDisposeScope();
        var x = Initial(noise, levels[0]);
        int count = levels.Length - 1;
        var history = new List<(double Lambda, Tensor X0)>();   // data predictions at finite levels, newest last
        (Tensor Start, double Lambda, int Order)? pending = null; // the last predictor step, to be corrected
        for (int i = 0; i < count; i++)
        {
            using var scope = NewDisposeScope();
            double sigma = levels[i], sigmaNext = levels[i + 1];
            var (x0, eps) = Evaluate(denoiser, x, sigma);
            if (pending is { } step)
            {
                // UniC: the step that produced x, redone with the evaluation at its end point.
                double lambda = -Math.Log(sigma), h = lambda - step.Lambda;
                var (phi0, phi1, phi2) = Phi(h);
                var start = history[^1].X0;
                var corrected = Math.Exp(-h) * step.Start + phi0 * start;
                if (step.Order == 1) corrected = corrected + phi0 * 0.5 * (x0 - start);
                else
                {
                    var (lambdaOld, oldX0) = history[^2];
                    double r = (lambdaOld - step.Lambda) / h;
                    double b1 = phi1 / (h * phi0), b2 = 2 * phi2 / (h * h * phi0);
                    double a1 = (b1 - b2) / (1 - r), a2 = b1 - a1;
                    corrected = corrected + phi0 * (a1 / r * (oldX0 - start) + a2 * (x0 - start));
                }
                x.Dispose();
                x = corrected.alias().MoveToOuterDisposeScope();
                step.Start.Dispose();
                pending = null;
            }
            Tensor next;
            if (sigmaNext == 0) next = x0;
            else if (double.IsPositiveInfinity(sigma)) next = x0 + sigmaNext * eps;
            else
            {
                double h = Math.Log(sigma / sigmaNext);
                double phi0 = -double.ExpM1(-h);
                next = sigmaNext / sigma * x + phi0 * x0;
                int order = history.Count == 0 ? 1 : 2;
                if (order == 2)
                {
                    var (lambdaLast, lastX0) = history[^1];
                    double hLast = -Math.Log(sigma) - lambdaLast;
                    next = next + phi0 * h / (2 * hLast) * (x0 - lastX0);
                }
                pending = (Keep(x), -Math.Log(sigma), order);
            }
            if (double.IsPositiveInfinity(sigma)) ClearHistory(history);
            else Remember(history, -Math.Log(sigma), x0, keep: 2);
            x = Advance(x, next, onStep, i, count, sigma, sigmaNext, x0);
        }
        pending?.Start.Dispose();
        ClearHistory(history);
        return x.MoveToOuterDisposeScope();
    }

    /// <summary>Runs the σ-space sampler of <paramref name="kind"/> (the shared signature of this class).</summary>
    public static Tensor Run(SamplerKind kind, ISigmaDenoiser denoiser, Tensor noise, IReadOnlyList<double> sigmas, StepNoise stepNoise,
        SamplerOptions options, Action<SamplerStep>? onStep = null) => kind switch
        {
            SamplerKind.Euler => Euler(denoiser, noise, sigmas, stepNoise, options, onStep),
            SamplerKind.Heun => Heun(denoiser, noise, sigmas, stepNoise, options, onStep),
            SamplerKind.EulerAncestral => EulerAncestral(denoiser, noise, sigmas, stepNoise, options, onStep),
            SamplerKind.DpmSolver2M => DpmSolver2M(denoiser, noise, sigmas, stepNoise, options, onStep),
            SamplerKind.DpmSolver3M => DpmSolver3M(denoiser, noise, sigmas, stepNoise, options, onStep),
            SamplerKind.DpmSolver2MSde => DpmSolver2MSde(denoiser, noise, sigmas, stepNoise, options, onStep),
            SamplerKind.UniPc => UniPc(denoiser, noise, sigmas, stepNoise, options, onStep),
            _ => throw new DiffuseException($"{kind} is not a σ-space sampler."),
        };

    /// <summary>
    /// Network evaluations (NFE) a σ-space sampler makes on <paramref name="sigmas"/>: one per step, except Heun, which
    /// makes two on every step that ends above σ = 0 and starts below σ = ∞.
    /// </summary>
    public static int FunctionEvaluations(SamplerKind kind, IReadOnlyList<double> sigmas)
    {
        var levels = NoiseLevels.Validate(sigmas);
        int steps = levels.Length - 1;
        if (kind != SamplerKind.Heun) return steps;
        int evaluations = 0;
        for (int i = 0; i < steps; i++)
            evaluations += levels[i + 1] > 0 && !double.IsPositiveInfinity(levels[i]) ? 2 : 1;
        return evaluations;
    }

    private static Tensor EulerOrHeun(ISigmaDenoiser denoiser, Tensor noise, IReadOnlyList<double> sigmas, StepNoise stepNoise,
        SamplerOptions options, Action<SamplerStep>? onStep, bool heun)
    {
        var levels = Levels(sigmas, options);
        denoiser = ClampedDenoiser.Clip(denoiser, options.ClipX0);
        using var noGrad = no_grad();
        using var samplerScope = NewDisposeScope();
        var x = Initial(noise, levels[0]);
        int count = levels.Length - 1;
        for (int i = 0; i < count; i++)
        {
            using var scope = NewDisposeScope();
            double sigma = levels[i], sigmaNext = levels[i + 1];
            // Churn (Algorithm 2, lines 4–6): lift x_i at σ_i to x̂ at σ̂ = σ_i·(1 + γ).
            double gamma = options.Churn?.Gamma(sigma, count) ?? 0;
            double sigmaHat = sigma * (1 + gamma);
            var xHat = gamma > 0
                ? x + options.Churn!.SNoise * Math.Sqrt(sigmaHat * sigmaHat - sigma * sigma) * stepNoise.Normal(i, x)
                : x;
            // Euler step (lines 7–8), written as D + σ_{i+1}·ε̂ so that it also holds from σ̂ = ∞.
            var (x0, eps) = Evaluate(denoiser, xHat, sigmaHat);
            var next = x0 + sigmaNext * eps;
            if (heun && sigmaNext > 0 && !double.IsPositiveInfinity(sigmaHat))
            {
                // Heun's correction (lines 9–11): average the slopes at both ends.
                var (_, epsNext) = Evaluate(denoiser, next, sigmaNext);
                next = xHat + (sigmaNext - sigmaHat) * 0.5 * (eps + epsNext);
            }
            x = Advance(x, next, onStep, i, count, sigma, sigmaNext, x0);
        }
        return x.MoveToOuterDisposeScope();
    }

    private static Tensor DpmSolverMultistep(ISigmaDenoiser denoiser, Tensor noise, IReadOnlyList<double> sigmas,
        SamplerOptions options, Action<SamplerStep>? onStep, int order)
    {
        var levels = Levels(sigmas, options);
        denoiser = ClampedDenoiser.Clip(denoiser, options.ClipX0);
        using var noGrad = no_grad();
        using var samplerScope = NewDisposeScope();
        var x = Initial(noise, levels[0]);
        int count = levels.Length - 1;
        var history = new List<(double Lambda, Tensor X0)>();   // data predictions at finite levels, newest last
        for (int i = 0; i < count; i++)
        {
            using var scope = NewDisposeScope();
            double sigma = levels[i], sigmaNext = levels[i + 1];
            var (x0, eps) = Evaluate(denoiser, x, sigma);
            Tensor next;
            if (sigmaNext == 0) next = x0;
            else if (double.IsPositiveInfinity(sigma)) next = x0 + sigmaNext * eps;
            else
            {
                double lambda = -Math.Log(sigma), h = Math.Log(sigma / sigmaNext);
                var (phi0, phi1, phi2) = Phi(h);
                int stepOrder = Math.Min(order, history.Count + 1);
                if (i + 2 < levels.Length && levels[i + 2] == 0) stepOrder = Math.Min(stepOrder, 2);
                next = sigmaNext / sigma * x + phi0 * x0;
                if (stepOrder == 2)
                {
                    var (lambdaLast, lastX0) = history[^1];
                    next = next + phi0 * h / (2 * (lambda - lambdaLast)) * (x0 - lastX0);
                }
                else if (stepOrder == 3)
                {
                    var (lambda1, x01) = history[^1];
                    var (lambda2, x02) = history[^2];
                    double h0 = lambda - lambda1, h1 = lambda1 - lambda2;
                    var slope01 = (x0 - x01) / h0;
                    var curvature = (slope01 - (x01 - x02) / h1) / (h0 + h1);   // second divided difference
                    next = next + phi1 * (slope01 + h0 * curvature) + 2 * phi2 * curvature;
                }
            }
            if (double.IsPositiveInfinity(sigma)) ClearHistory(history);
            else Remember(history, -Math.Log(sigma), x0, keep: order - 1);
            x = Advance(x, next, onStep, i, count, sigma, sigmaNext, x0);
        }
        ClearHistory(history);
        return x.MoveToOuterDisposeScope();
    }

    /// <summary>φ0 = 1 − e^(−h), φ1 = h − φ0, φ2 = h²/2 − φ1: the weights e^(−h)·∫_0^h e^u·u^k/k! du of the exponential integrator.</summary>
    private static (double Phi0, double Phi1, double Phi2) Phi(double h)
    {
        double phi0 = -double.ExpM1(-h), phi1 = h - phi0;
        return (phi0, phi1, h * h / 2 - phi1);
    }

    private static double[] Levels(IReadOnlyList<double> sigmas, SamplerOptions options)
    {
        options.Churn?.Validate();
        if (options.ClipX0 is { } c && !(c > 0)) throw new DiffuseException($"the x0 clip range must be positive (got {c}).");
        if (NoiseLevels.IsIncreasing(sigmas))
        {
            if (options.Churn is not null) throw new DiffuseException("stochastic churn adds noise on the way to the data; it cannot run from low to high noise.");
            return NoiseLevels.ValidateIncreasing(sigmas);
        }
        // A decreasing list that stops above 0 is a segment of a path (RePaint's blocks): run it as it is.
        if (sigmas.Count >= 2 && sigmas[^1] > 0)
        {
            var segment = NoiseLevels.Validate(sigmas);
            return segment[..^1];
        }
        return NoiseLevels.Validate(sigmas);
    }

    /// <summary>The state at σ_0: x = z·√(1 + σ_0²), or z itself at σ_0 = ∞ (see <see cref="Evaluate"/>).</summary>
    private static Tensor Initial(Tensor noise, double sigma) =>
        double.IsPositiveInfinity(sigma) ? noise.alias() : noise * Math.Sqrt(1 + sigma * sigma);

    /// <summary>D(x; σ) through the variance-preserving input z = x/√(1 + σ²); at σ = ∞ the state already holds z.</summary>
    private static DenoiserOutput Evaluate(ISigmaDenoiser denoiser, Tensor x, double sigma)
    {
        var z = double.IsPositiveInfinity(sigma) ? x : x / Math.Sqrt(1 + sigma * sigma);
        return denoiser.DenoiseAtSigma(z, sigma);
    }

    /// <summary>Reports the step, then replaces the state by <paramref name="next"/>, kept in the sampler's scope.</summary>
    private static Tensor Advance(Tensor x, Tensor next, Action<SamplerStep>? onStep, int step, int count, double sigma,
        double sigmaNext, Tensor x0)
    {
        if (onStep is not null)
        {
            using var reportScope = NewDisposeScope();
            var z = sigmaNext == 0 ? next : next / Math.Sqrt(1 + sigmaNext * sigmaNext);
            onStep(new SamplerStep(step + 1, count, -1, z, x0, sigma));
        }
        var kept = Keep(next);
        x.Dispose();
        return kept;
    }

    /// <summary>A handle on <paramref name="tensor"/> that outlives the current step's dispose scope.</summary>
    private static Tensor Keep(Tensor tensor) => tensor.alias().MoveToOuterDisposeScope();

    private static void Remember(List<(double Lambda, Tensor X0)> history, double lambda, Tensor x0, int keep)
    {
        history.Add((lambda, Keep(x0)));
        while (history.Count > keep)
        {
            history[0].X0.Dispose();
            history.RemoveAt(0);
        }
    }

    private static void ClearHistory(List<(double Lambda, Tensor X0)> history)
    {
        foreach (var (_, x0) in history) x0.Dispose();
        history.Clear();
    }
}
