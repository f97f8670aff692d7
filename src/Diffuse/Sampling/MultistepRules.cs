using static TorchSharp.torch;

namespace Diffuse.Sampling;

/// <summary>The data predictions (λ = −log σ, D) a multistep rule keeps from earlier steps of its run, newest last.</summary>
internal abstract class MultistepRule : ISamplerStepRule
{
    protected List<(double Lambda, Tensor X0)> History { get; } = new();

    public StateScale Scale => StateScale.VarianceExploding;

    public abstract SamplerStepResult Step(SamplerStepContext step);

    /// <summary>Keeps D at λ, dropping all but the newest <paramref name="keep"/>; from σ = ∞ (no finite λ) it forgets all.</summary>
    protected void Remember(SamplerStepContext step, Tensor x0, int keep)
    {
        if (double.IsPositiveInfinity(step.Sigma))
        {
            Clear();
            return;
        }
        History.Add((-Math.Log(step.Sigma), step.Keep(x0)));
        while (History.Count > keep)
        {
            History[0].X0.Dispose();
            History.RemoveAt(0);
        }
    }

    /// <summary>φ0 = 1 − e^(−h), φ1 = h − φ0, φ2 = h²/2 − φ1: the weights e^(−h)·∫_0^h e^u·u^k/k! du of the exponential integrator.</summary>
    protected static (double Phi0, double Phi1, double Phi2) Phi(double h)
    {
        double phi0 = -double.ExpM1(-h), phi1 = h - phi0;
        return (phi0, phi1, h * h / 2 - phi1);
    }

    private void Clear()
    {
        foreach (var (_, x0) in History) x0.Dispose();
        History.Clear();
    }

    public virtual void Dispose() => Clear();
}

/// <summary>DPM-Solver++(2M) and (3M): see <see cref="SigmaSamplers.DpmSolver2M"/> and <see cref="SigmaSamplers.DpmSolver3M"/>.</summary>
internal sealed class DpmSolverRule(int order) : MultistepRule
{
    public override SamplerStepResult Step(SamplerStepContext step)
    {
        var (x, sigma, sigmaNext) = (step.State, step.Sigma, step.SigmaNext);
        var (x0, eps) = step.Evaluate(x, sigma);
        Tensor next;
        if (sigmaNext == 0) next = x0;
        else if (double.IsPositiveInfinity(sigma)) next = x0 + sigmaNext * eps;
        else
        {
            double lambda = -Math.Log(sigma), h = Math.Log(sigma / sigmaNext);
            var (phi0, phi1, phi2) = Phi(h);
            int stepOrder = Math.Min(order, History.Count + 1);
            if (step.SigmaAfterNext == 0) stepOrder = Math.Min(stepOrder, 2);   // lower-order final steps
            next = sigmaNext / sigma * x + phi0 * x0;
            if (stepOrder == 2)
            {
                var (lambdaLast, lastX0) = History[^1];
                next = next + phi0 * h / (2 * (lambda - lambdaLast)) * (x0 - lastX0);
            }
            else if (stepOrder == 3)
            {
                var (lambda1, x01) = History[^1];
                var (lambda2, x02) = History[^2];
                double h0 = lambda - lambda1, h1 = lambda1 - lambda2;
                var slope01 = (x0 - x01) / h0;
                var curvature = (slope01 - (x01 - x02) / h1) / (h0 + h1);   // second divided difference
                next = next + phi1 * (slope01 + h0 * curvature) + 2 * phi2 * curvature;
            }
        }
        Remember(step, x0, keep: order - 1);
        return new(next, x0);
    }
}

/// <summary>SDE-DPM-Solver++(2M): see <see cref="SigmaSamplers.DpmSolver2MSde"/>.</summary>
internal sealed class DpmSolverSdeRule : MultistepRule
{
    public override SamplerStepResult Step(SamplerStepContext step)
    {
        var (x, sigma, sigmaNext) = (step.State, step.Sigma, step.SigmaNext);
        var (x0, _) = step.Evaluate(x, sigma);
        Tensor next;
        if (sigmaNext == 0) next = x0;
        else
        {
            // e^(−2h) = (σ_{i+1}/σ_i)²; from σ = ∞ it is 0 and the step draws x_1 ~ N(D, σ_1²).
            double ratio = sigmaNext / sigma, decay = ratio * ratio, gain = 1 - decay;
            next = double.IsPositiveInfinity(sigma) ? x0 * gain : decay * x + gain * x0;
            if (History.Count > 0)
            {
                var (lambdaLast, lastX0) = History[^1];
                double h = Math.Log(sigma / sigmaNext), hLast = -Math.Log(sigma) - lambdaLast;
                next = next + 0.5 * gain * h / hLast * (x0 - lastX0);
            }
            next = next + sigmaNext * Math.Sqrt(gain) * step.Normal(x0);
        }
        Remember(step, x0, keep: 1);
        return new(next, x0);
    }
}

/// <summary>UniPC, the UniP-2 predictor with the UniC corrector: see <see cref="SigmaSamplers.UniPc"/>.</summary>
internal sealed class UniPcRule : MultistepRule
{
    private (Tensor Start, double Lambda, int Order)? _pending;   // the last predictor step, to be corrected

    public override SamplerStepResult Step(SamplerStepContext step)
    {
        var (x, sigma, sigmaNext) = (step.State, step.Sigma, step.SigmaNext);
        var (x0, eps) = step.Evaluate(x, sigma);
        if (_pending is { } pending)
        {
            // UniC: the step that produced x, redone with the evaluation at its end point.
            double lambda = -Math.Log(sigma), h = lambda - pending.Lambda;
            var (phi0, phi1, phi2) = Phi(h);
            var start = History[^1].X0;
            var corrected = Math.Exp(-h) * pending.Start + phi0 * start;
            if (pending.Order == 1) corrected = corrected + phi0 * 0.5 * (x0 - start);
            else
            {
                var (lambdaOld, oldX0) = History[^2];
                double r = (lambdaOld - pending.Lambda) / h;
                double b1 = phi1 / (h * phi0), b2 = 2 * phi2 / (h * h * phi0);
                double a1 = (b1 - b2) / (1 - r), a2 = b1 - a1;
                corrected = corrected + phi0 * (a1 / r * (oldX0 - start) + a2 * (x0 - start));
            }
            x = corrected;
            pending.Start.Dispose();
            _pending = null;
        }
        Tensor next;
        if (sigmaNext == 0) next = x0;
        else if (double.IsPositiveInfinity(sigma)) next = x0 + sigmaNext * eps;
        else
        {
            double h = Math.Log(sigma / sigmaNext);
            double phi0 = -double.ExpM1(-h);
            next = sigmaNext / sigma * x + phi0 * x0;
            int order = History.Count == 0 ? 1 : 2;
            if (order == 2)
            {
                var (lambdaLast, lastX0) = History[^1];
                double hLast = -Math.Log(sigma) - lambdaLast;
                next = next + phi0 * h / (2 * hLast) * (x0 - lastX0);
            }
            _pending = (step.Keep(x), -Math.Log(sigma), order);
        }
        Remember(step, x0, keep: 2);
        return new(next, x0);
    }

    public override void Dispose()
    {
        _pending?.Start.Dispose();
        _pending = null;
        base.Dispose();
    }
}
